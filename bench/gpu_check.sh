#!/usr/bin/env bash
# On a machine with a CUDA GPU: make the venv, run the CUDA tests, measure the 12 MP scan.
# Usage: bash bench/gpu_check.sh   (about 5-8 minutes; results in bench/results/)
set -euo pipefail
cd "$(dirname "$0")/.."
make .venv/.installed
export PYTHONPATH=$PWD
.venv/bin/python -m faceapp doctor --device cuda
.venv/bin/python -m pytest -q tests/engine/test_detect.py tests/engine/test_inference.py \
  tests/engine/test_gpu_decode.py -k "cuda or gpu or plan" -p no:randomly
.venv/bin/python bench/throughput.py --device cuda --lfw-count 500 --large-count 200
