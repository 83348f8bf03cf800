#!/usr/bin/env bash
# Build .venv-triton: PyTriton pins numpy<2, so `vigil triton-serve` and the tests in
# tests/triton_serving (which start a real tritonserver from it) get an environment of their own.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-triton
.venv-triton/bin/pip install -q nvidia-pytriton==0.7.0 'tritonclient[grpc,http]==2.73.0'
.venv-triton/bin/pip install -q -e '.[cpu,serve]'
