#!/usr/bin/env bash
# make fuzz: every target under AFL++ for FUZZ_SECONDS each (default 60), then the figures:
# inputs run, paths found, crashes and hangs per target. A crash is saved under
# tests/fuzz/crashes/<target>/ (commit it with a regression test: see tests/fuzz/README.md)
# and fails the run. cargo-afl comes from crates.io (`cargo install cargo-afl`, which builds
# AFL++ for the pinned toolchain).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-uplink lifecycle chat command downlink token claims deadletter}
work=${FUZZ_WORK:-$root/.run/fuzz}
export CARGO_TARGET_DIR=$root/target/fuzz
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_QUIET=1

command -v cargo-afl >/dev/null || cargo install cargo-afl --locked --version 0.18.2
(cd "$here" && cargo afl build --features afl --release --locked -q)
rm -rf "$work"; mkdir -p "$work/out"
python3 "$here/seeds.py" "$work/seeds"
bin=$CARGO_TARGET_DIR/release/fuzz
failed=0
printf '%-11s %10s %8s %7s %6s\n' target inputs paths crashes hangs >"$work/summary"
for t in $targets; do
  FUZZ_TARGET=$t cargo afl fuzz -i "$work/seeds/$t" -o "$work/out/$t" -V "$seconds" -- "$bin" \
    >"$work/$t.log" 2>&1 || { echo "fuzz: afl-fuzz failed on $t, see $work/$t.log" >&2; tail -20 "$work/$t.log" >&2; failed=1; continue; }
  stats=$work/out/$t/default/fuzzer_stats
  get() { awk -F' *: *' -v k="$1" '$1==k {print $2}' "$stats"; }
  crashes=$(get saved_crashes); hangs=$(get saved_hangs)
  printf '%-11s %10s %8s %7s %6s\n' "$t" "$(get execs_done)" "$(get corpus_count)" "$crashes" "$hangs" >>"$work/summary"
  if [[ "${crashes:-0}" != 0 ]]; then
    mkdir -p "$here/crashes/$t"
    cp "$work/out/$t/default/crashes/"id* "$here/crashes/$t/" 2>/dev/null || true
    failed=1
  fi
done
echo "fuzz: ${seconds} s per target (AFL++ via cargo-afl, coverage-guided)"
cat "$work/summary"
exit $failed
