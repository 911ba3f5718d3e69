#!/usr/bin/env bash
# One GPU session, ~10 min at most (the parts' limits; expected ~5 min): (1) benchmark batched vs
# loop vs paper-style loop (ConvNet k=8, CIFAR-sized synthetic inputs, M = 95, with fallbacks to
# smaller M if memory runs out), (2) entropy timing (N = 4000, d = 97 200), (3) the Recorder's
# overhead on a user's loop (bench_recorder.py, steps only), (4) the gpu-short preset (fixed LR +
# fixed ELR, 5x5 grids, 12 000 steps of M = 25 ConvNets k=8 on digits, a noise pair every 10 steps).
# gpu-short estimate: 466 aten ops and <= 39 GFLOP per step (FlopCounterMode on the CPU), so on an
# H100 ~2-8 ms per step whether launch- or FLOP-bound, 1.5-4 min for both protocols; limit 300 s.
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

part bench 170 python benchmarks/bench_nets.py --device cuda --width 8 --models 8 32 95 \
  --channels 3 --size 32 --batch 128 --loop-models 3 --steps 20 --repeats 3 \
  --parts batched loop paper --out "$OUT/bench.json"
part entropy 60 python benchmarks/bench_nets.py --device cuda --entropy 4000 97200 \
  --parts entropy --out "$OUT/entropy.json"
part recorder 45 python benchmarks/bench_recorder.py --device cuda --parts steps --steps 50 \
  --repeats 5 --out "$OUT/recorder.json"
part gpu_short 300 python -c "
import argparse, sys, time
from thermocheck.nets import cli_verify
t0 = time.time()
code = cli_verify(argparse.Namespace(protocol='all', preset='gpu-short', out='$OUT/gpu-short',
                                     seed=0, device='cuda', dim=None, model=None, dataset=None,
                                     data_dir=None, iters=None))
print('gpu-short exit code', code, 'seconds', round(time.time() - t0))
"
echo "total $(( $(date +%s) - T0 ))s" | tee -a "$OUT/parts.txt"
