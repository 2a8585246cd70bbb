#!/usr/bin/env bash
# The one command a session with an NVIDIA GPU runs to verify the CUDA provider (under 10 minutes):
#   bash providers/cuda/gpu_check.sh            # from the repository root; results under $OUT
# 1. installs tessera-cuda with the cuda12 extra from this working tree,
# 2. runs tests/providers/cuda (GPU tests included: nothing may skip for "no device"),
# 3. strict conformance on the cuda provider -> $OUT/cuda-strict.json (+ .md),
# 4. the benchmark vs the CPU provider and PyTorch eager (if installed) -> $OUT/cuda-bench.json.
set -uo pipefail
OUT="${OUT:-./gpu-check-out}"
mkdir -p "$OUT"
status=0
step() { echo; echo "=== $* ==="; }

step "install"
python -m pip install -q -e ./plugins_registry -e ./core -e ./providers/cpu -e ./conformance \
  -e "./providers/cuda[cuda12]" "pytest>=7" 2>&1 | tail -3
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
tessera providers | tee "$OUT/providers.txt"

step "tests/providers/cuda"
timeout 240 python -m pytest tests/providers/cuda -q -rs 2>&1 | tee "$OUT/pytest.txt" | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if grep -q "SKIPPED.*test_cuda_gpu" "$OUT/pytest.txt"; then echo "GPU tests skipped: no usable device"; status=1; fi

step "strict conformance (cuda)"
timeout 240 tessera conformance --provider cuda --strict --json "$OUT/cuda-strict.json" \
  --markdown "$OUT/cuda-strict.md" 2>&1 | tail -12 || status=1

step "benchmark"
timeout 120 python providers/cuda/bench/compare.py --repeat 20 --json "$OUT/cuda-bench.json" || status=1

echo; echo "gpu_check finished with status $status; results in $OUT"
exit $status
