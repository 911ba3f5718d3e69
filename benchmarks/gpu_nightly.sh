#!/usr/bin/env bash
# The nightly GPU check users run (<= 10 min on one H100/H200): the gpu-nightly preset (ConvNet k=8
# on the generated gratings set, batch 128, 5x5 grids, fixed LR and fixed ELR; V1, V3, norm balance), writing the states and
# report.json, report.md and figures to $OUT, with a results cache of its own in $OUT/cache (a rerun
# after an interruption continues from it). Exit code: thermocheck verify's (0 passed, 1 failed,
# 3 inconclusive). Needs no install: PYTHONPATH=. is enough.
set -u
OUT=${OUT:-./gpu-nightly-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -m thermocheck.cli verify --substrate net --preset gpu-nightly --device cuda \
  --out "$OUT" --cache "$OUT/cache"
