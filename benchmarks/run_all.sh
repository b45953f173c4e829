#!/usr/bin/env bash
# Runs every benchmark on the shipped checkpoint; JSON lands in out/benchmarks/. Needs ../shared for rate_accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p out/benchmarks
$PY -m benchmarks.coder_speed
$PY -m benchmarks.width_switch
$PY -m benchmarks.runtime_overhead
$PY -m benchmarks.rpc_wakeup
$PY -m benchmarks.batching_gain
$PY -m benchmarks.load_test
$PY -m benchmarks.sim_speed
$PY -m benchmarks.rate_accuracy
