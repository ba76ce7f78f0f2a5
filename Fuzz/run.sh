#!/usr/bin/env bash
# Builds every fuzz target (Fuzz/Package.swift) with libFuzzer and ASan, runs each for N seconds
# (default 30) on a copy of its seed corpus (with Fuzz/dictionaries/<target>.dict if there is
# one), and prints each target's executions and coverage.
# Exit 1 if any target found a crash, a trap, an ASan report, a leak or a hang: its input is kept
# under Fuzz/artifacts/<target>/ (reproduce with `Fuzz/.build/release/<target> <that file>`).
# The committed corpora are never changed; to keep what a run found, minimise it into them by hand
# (`<target> -merge=1 Fuzz/corpus/<target> <run's corpus>`).
#
#   Fuzz/run.sh [seconds per target] [target ...]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=($(sed -n 's/^ *"\(fuzz_[a-z0-9_]*\)",$/\1/p' Package.swift))
fi

# Both spellings are needed: SwiftPM's `--sanitize fuzzer` makes it link libFuzzer's main (with
# only -Xswiftc, it aliases main to each target's own entry point and the link fails), but it does
# not instrument the code for coverage (libFuzzer then finds nothing); `-Xswiftc -sanitize=...`
# does, in every module, WireProtocol included. ld.gold warns "Cannot export local symbol" for
# every target: harmless, filtered.
flags=(-c release --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer,address)
build_status=0
swift build "${flags[@]}" >"${TMPDIR:-/tmp}/small-db-fuzz-build.log" 2>&1 || build_status=$?
grep -v "Cannot export local symbol" "${TMPDIR:-/tmp}/small-db-fuzz-build.log" | grep -E "error|warning:|Compiling|Complete" || true
[ "$build_status" -eq 0 ] || { echo "fuzz build failed" >&2; exit 1; }
bin="$(swift build "${flags[@]}" --show-bin-path)"

# A trap is reported by libFuzzer and ASan with its stack; Swift's own backtracer would add up to
# 30 s per finding symbolicating the same stack again.
export SWIFT_BACKTRACE=enable=no
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
printf '%-28s %12s %8s %8s %6s  %s\n' target executions cov ft corpus result
for target in "${targets[@]}"; do
    mkdir -p "$work/$target" "artifacts/$target"
    cp -R "corpus/$target/." "$work/$target/"
    log="$work/$target.log"
    status=0
    dict=()
    [ -f "dictionaries/$target.dict" ] && dict=(-dict="dictionaries/$target.dict")
    # -timeout: one input taking 10 s is a hang, a finding like a crash.
    "$bin/$target" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="artifacts/$target/" "$work/$target" >"$log" 2>&1 || status=$?
    executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
    cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
    ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
    corp="$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")"
    if [ "$status" -eq 0 ]; then
        result=ok
    else
        result="FAILED (exit $status): $(ls -t "artifacts/$target" | head -1)"
        failed+=("$target")
        cp "$log" "artifacts/$target/last-run.log"
        grep -E "ERROR|Fatal error|precondition|SUMMARY" "$log" | head -5 >&2 || true
    fi
    printf '%-28s %12s %8s %8s %6s  %s\n' "$target" "${executions:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "findings in: ${failed[*]} (inputs and logs under Fuzz/artifacts/)" >&2
    exit 1
fi
