#!/usr/bin/env bash
# One GPU session, 12.5 min at most (the parts' limits; expected about 10 min on an H100/H200):
# (1) bench (benchmarks/gpu_bench.py): throughput options of the batched trainer against one model
#     at a time in the same run, ConvNet k=8 on 3x32x32 inputs, batch 128, M=32: cuDNN autotuning,
#     torch.compile default and reduce-overhead (CUDA graphs), channels_last, grouped convolutions
#     vs vmap, fused updates, TF32 as an option; ResNet-18 k=4; FLOPs per model-iteration and the
#     fraction of the device's FP32 peak -> $OUT/bench/bench.json;
# (2) nightly: `thermocheck verify --substrate net --preset gpu-nightly` (ConvNet k=8 on the
#     generated gratings set, batch 128, 5x5 grids, fixed LR and fixed ELR) -> $OUT/gpu-nightly/;
# (3) interpolation: the gpu-interpolation preset (ConvNet k=32 on the 1797 digits at small
#     effective learning rates: no stationary distribution, reported as such)
#     -> $OUT/gpu-interpolation/.
# Each part runs under its own timeout and records its exit code; one failure never stops the
# others. PRESET=gpu-short runs the nightly at half length instead (a rerun with less time left).
# TINY=1 runs every part on the CPU at toy sizes with 4x the limits, to check the script first.
# Results go to $OUT (default ./gpu-out). Needs no optional extras: PYTHONPATH=. is enough.
set -u
OUT=${OUT:-./gpu-out}
PRESET=${PRESET:-gpu-nightly}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
if [ "${TINY:-0}" = 1 ]; then
  DEVICE=cpu
  SCALE=4  # a CPU is slower than the GPU the limits are set for
  BENCH=(--tiny --threads 1)
  VERIFY=(--iters 100 --dataset gratings-small)
  INTERP=(--iters 100)
else
  DEVICE=cuda
  SCALE=1
  BENCH=()
  VERIFY=()
  INTERP=()
fi
T0=$(date +%s)
part() {  # part NAME TIMEOUT_S CMD...: run, log, record the exit code
  local name=$1 limit=$(( $2 * SCALE )); shift 2
  echo "== $name (limit ${limit}s, at $(( $(date +%s) - T0 ))s)"
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc elapsed=$(( $(date +%s) - T0 ))s" | tee -a "$OUT/parts.txt"
  tail -n 15 "$OUT/$name.log"
}
{ nvidia-smi; python -c "import json; from thermocheck.machine import device_info; print(json.dumps(device_info(), indent=1))"; } > "$OUT/env.txt" 2>&1

part bench 240 python -m benchmarks.gpu_bench --device "$DEVICE" --part-limit 90 \
  "${BENCH[@]}" --out "$OUT/bench"
part nightly 420 python -m thermocheck.cli verify --substrate net --preset "$PRESET" \
  --device "$DEVICE" "${VERIFY[@]}" --out "$OUT/$PRESET" --cache "$OUT/cache"
part interpolation 90 python -m thermocheck.cli verify --substrate net \
  --preset gpu-interpolation --device "$DEVICE" "${INTERP[@]}" --out "$OUT/gpu-interpolation" \
  --cache "$OUT/cache"
echo "total $(( $(date +%s) - T0 ))s" | tee -a "$OUT/parts.txt"
