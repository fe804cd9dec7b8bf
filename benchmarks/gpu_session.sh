#!/usr/bin/env bash
# Everything a GPU session runs, in one device call (benchmarks/gpu_session.py says what):
#   bash benchmarks/gpu_session.sh WHEELDIR           # on the GPU machine; results in $OUT
#   bash benchmarks/gpu_session.sh --plan WHEELDIR    # anywhere: the steps, checked on a CPU
# It needs only python3 with its standard library to start: the first step installs the rest.
set -u
cd "$(dirname "$0")/.."
exec python3 benchmarks/gpu_session.py "$@"
