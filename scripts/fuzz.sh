#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 60), one after another, and
# fails on the first crash. cargo-fuzz needs nightly-only rustc flags (sanitizers,
# coverage passes); the machine has the stable toolchain only, so RUSTC_BOOTSTRAP=1 lets
# stable rustc take them. A crash leaves its input in fuzz/artifacts/<target>/.
#   scripts/fuzz.sh 600        # ten minutes each, as the closing notes report
#   scripts/fuzz.sh 5 --quick  # CI: shows every target builds and runs
# --quick builds without optimisation and without AddressSanitizer. That halves the build
# (the whole dependency tree is compiled with coverage instrumentation), and a few seconds
# per target need neither speed nor ASan: the targets call safe Rust, and the long local
# run keeps both.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
build=(-O)
[ "${2:-}" = "--quick" ] && build=(--dev --sanitizer none)
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
cargo fuzz build "${build[@]}"
log="$(mktemp)"
trap 'kill 0 2>/dev/null || true; rm -f "$log"' INT TERM
trap 'rm -f "$log"' EXIT
for target in $(cargo fuzz list); do
  echo "fuzz: $target for ${seconds}s"
  status=0
  cargo fuzz run "${build[@]}" "$target" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|Done )" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target crashed; its input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
