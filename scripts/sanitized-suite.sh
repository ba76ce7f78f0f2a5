#!/usr/bin/env bash
# Runs the whole test suite under a sanitizer and fails on any report, in the test process or in
# any server process a test starts (docs/OPERATIONS.md §14 "Sanitizers").
#
#   scripts/sanitized-suite.sh thread    # ThreadSanitizer, about 10 min on 2 cores, plus the build
#   scripts/sanitized-suite.sh address   # AddressSanitizer and LeakSanitizer
#
# Each sanitizer builds into its own scratch path (.build-tsan, .build-asan) so the normal build is
# left alone. Reports go to files (log_path), one per process, so that a server's report, which
# goes to its own stderr and so into a test's temporary directory, is not lost; the run fails if
# any file appears, whatever the tests said.
set -euo pipefail
cd "$(dirname "$0")/.."
sanitizer="${1:?usage: $0 thread|address}"
case "$sanitizer" in
    thread) scratch=.build-tsan ;;
    address) scratch=.build-asan ;;
    *) echo "unknown sanitizer $sanitizer (thread or address)" >&2; exit 2 ;;
esac
reports="$(mktemp -d)"
trap 'rm -rf "$reports"' EXIT

swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch"
status=0
case "$sanitizer" in
    thread)
        # .ci/tsan-suppressions.txt says why each entry is not a race in our code.
        TSAN_OPTIONS="suppressions=$PWD/.ci/tsan-suppressions.txt log_path=$reports/report" \
            swift test --skip-build --sanitize=thread --scratch-path "$scratch" || status=$?
        ;;
    address)
        # LeakSanitizer runs too (at each process's exit); .ci/lsan-suppressions.txt says why each
        # entry is not a leak of ours. print_suppressions=0: a process whose leaks were all
        # suppressed writes no file (LSan would list the suppressions used, which is no report).
        ASAN_OPTIONS="log_path=$reports/report" LSAN_OPTIONS="suppressions=$PWD/.ci/lsan-suppressions.txt print_suppressions=0" \
            swift test --skip-build --sanitize=address --scratch-path "$scratch" || status=$?
        ;;
esac
if compgen -G "$reports/report*" >/dev/null; then
    echo "--- $sanitizer sanitizer reports:" >&2
    cat "$reports"/report* >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then echo "the $sanitizer-sanitized suite failed (status $status)" >&2; exit "$status"; fi
echo "$sanitizer sanitizer: the suite passed with no report"
