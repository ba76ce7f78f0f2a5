#!/usr/bin/env bash
# A/B of two small_db_bench binaries (the engine alone), in one run. Two ways to share the noise:
#
#   alternate  A then B, each pinned to CPU 0, the order swapped every round (the project's usual
#              method; the host's load moves figures ±30% between minutes, so it needs many rounds)
#   paired     A and B at the same time, one on each CPU, swapping CPUs every round: both see
#              the same minute, so the per-round ratio B/A is steady even when the figures are
#              not. They share the L3 cache and the disk, so the absolute figures are lower and
#              the disk-bound cases (1 and 16 writers) couple the two; use it for the CPU-bound
#              cases (gets, 64 and 256 writers).
#
#   Benchmarks/engine-ab.sh A/small_db_bench B/small_db_bench [rounds, default 6] [mode, default paired] [bench arguments]
#   e.g. Benchmarks/engine-ab.sh old/small_db_bench new/small_db_bench 6 paired -case gets,puts -writers 64,256 -duration 2s
#
# Prints, for every figure, the medians of A and B, the median of the per-round ratios B/A, and
# the ratios. Never run in CI: the figures depend on the machine.
set -euo pipefail
binary_a=$(realpath "$1") binary_b=$(realpath "$2")
rounds=${3:-6}
mode=${4:-paired}
shift $(( $# < 4 ? $# : 4 ))
arguments=("$@")
[[ ${#arguments[@]} -gt 0 ]] || arguments=(-case gets,puts -writers 1,16,64,256 -duration 2s)
[[ $mode == paired || $mode == alternate ]] || { echo "mode must be paired or alternate" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # side cpu round
    local binary=$binary_a; [[ $1 == B ]] && binary=$binary_b
    (cd "$work" && taskset -c "$2" "$binary" "${arguments[@]}" -json 2>/dev/null) >"$work/$1-$3.json"
}
for round in $(seq "$rounds"); do
    if [[ $mode == paired ]]; then
        if (( round % 2 )); then run A 0 "$round" & run B 1 "$round" & else run A 1 "$round" & run B 0 "$round" & fi
        wait
    elif (( round % 2 )); then
        run A 0 "$round"; run B 0 "$round"
    else
        run B 0 "$round"; run A 0 "$round"
    fi
done

python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
figures = {}
for side in "AB":
    for round in range(1, rounds + 1):
        for result in json.load(open(f"{work}/{side}-{round}.json")):
            figures.setdefault(result["name"], {}).setdefault(side, []).append(result["value"])
print(f"{'case':30s} {'A':>12s} {'B':>12s} {'B/A':>6s}   per-round B/A")
for name, sides in figures.items():
    ratios = [b / a for a, b in zip(sides["A"], sides["B"])]
    print(f"{name:30s} {statistics.median(sides['A']):12.0f} {statistics.median(sides['B']):12.0f} "
          f"{statistics.median(ratios):6.3f}   {' '.join(f'{r:.3f}' for r in ratios)}")
PY
