#!/usr/bin/env bash
# The nightly GPU check users run (<= 10 min on one H100): the gpu-nightly preset (ConvNet k=8 on
# digits, 5x5 grids, fixed LR and fixed ELR; V1, V3, norm balance), writing the states and
# report.json, report.md and figures to $OUT. Exit code: cli_verify's (0 passed, 1 failed, 3 inconclusive).
set -u
OUT=${OUT:-./gpu-nightly-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -c "
import argparse, sys
from thermocheck.nets import cli_verify
sys.exit(cli_verify(argparse.Namespace(protocol='all', preset='gpu-nightly', out='$OUT', seed=0,
                                       device='cuda', dim=None, model=None, dataset=None,
                                       data_dir=None, iters=None)))
"
