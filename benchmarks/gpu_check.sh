#!/usr/bin/env bash
# One GPU session, ~13 min at most (the parts' limits; expected ~7 min):
# (1) bench: batched vs one model at a time vs a paper-style loop (ConvNet k=8, CIFAR-sized
#     synthetic inputs, batch 128, M = 8, 32, 95), eager, cuDNN autotuner on;
# (2) bench_compiled: M = 95 eager and through torch.compile (default, and reduce-overhead = CUDA
#     graphs), against the loop, in one run;
# (3) entropy timing (N = 4000, d = 97 200); (4) the Recorder's overhead on a user's loop;
# (5) the gpu-short preset (5x5 grids, ConvNet k=8 on digits, batch 16, fixed LR and fixed ELR)
#     through `thermocheck verify --substrate net`.
# Each part runs under its own timeout and records its errors; one failure never stops the others.
# Results go to $OUT (default ./gpu-out). Needs no optional extras: PYTHONPATH=. is enough.
set -u
OUT=${OUT:-./gpu-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
T0=$(date +%s)
part() {  # part NAME TIMEOUT_S CMD...: run, log, record the exit code
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s, at $(( $(date +%s) - T0 ))s)"
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc elapsed=$(( $(date +%s) - T0 ))s" | tee -a "$OUT/parts.txt"
  tail -n 15 "$OUT/$name.log"
}
{ nvidia-smi; python -c "import torch, sys; print(sys.version); print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"; } > "$OUT/env.txt" 2>&1

part bench 150 python benchmarks/bench_nets.py --device cuda --width 8 --models 8 32 95 \
  --channels 3 --size 32 --batch 128 --loop-models 3 --steps 20 --repeats 3 \
  --parts batched loop paper --out "$OUT/bench.json"
part bench_compiled 200 python benchmarks/bench_nets.py --device cuda --width 8 --models 95 \
  --compile default reduce-overhead --channels 3 --size 32 --batch 128 --loop-models 2 \
  --steps 20 --repeats 3 --parts batched loop --out "$OUT/bench_compiled.json"
part entropy 60 python benchmarks/bench_nets.py --device cuda --entropy 4000 97200 \
  --parts entropy --out "$OUT/entropy.json"
part recorder 45 python benchmarks/bench_recorder.py --device cuda --parts steps --steps 50 \
  --repeats 5 --out "$OUT/recorder.json"
part gpu_short 300 python -m thermocheck.cli verify --substrate net --preset gpu-short \
  --device cuda --out "$OUT/gpu-short" --cache "$OUT/cache"
echo "total $(( $(date +%s) - T0 ))s" | tee -a "$OUT/parts.txt"
