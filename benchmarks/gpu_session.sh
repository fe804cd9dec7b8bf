#!/usr/bin/env bash
# Everything a GPU session runs, in one device call (see ../shared/gpu/README.md):
#   bash benchmarks/gpu_session.sh WHEELDIR [--quick]
# installs islpy/PyCUDA and polypipe into /tmp/site, runs the gpu-marked tests (results and
# compute-sanitizer), then the benchmark; logs and JSON/PNG go to $OUT (default ./gpu_out).
set -uo pipefail
WHEELS=${1:?usage: gpu_session.sh WHEELDIR [--quick]}
shift
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site \
    "$WHEELS"/*.whl . && export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv | tee "$OUT/device.txt"
python3 -m pytest -q -m gpu -x tests/test_cuda_runtime.py tests/test_gpu_device.py \
    -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.txt"
python3 benchmarks/gpu.py --out "$OUT" "$@" 2>&1 | tee "$OUT/benchmark.txt"
