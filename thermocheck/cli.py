"""The ``thermocheck`` command line. ``thermocheck verify`` checks every law on every protocol.

Exit codes (READINGS.md): 0 every applicable law passed, 1 a law failed, 3 none failed but some were
inconclusive, 2 a usage error (argparse's own code, also used for invalid values and for a
substrate this installation cannot run).
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Sequence

from thermocheck._argtypes import int_at_least
from thermocheck.errors import InvalidParameterError

__all__ = ["build_parser", "main"]

PROTOCOL_CHOICES = ("fixed_sphere", "fixed_elr", "fixed_lr", "all")
#: ``quick`` and ``paper`` serve both substrates; the others are network presets
#: (``thermocheck.nets.PRESETS``).
PRESET_CHOICES = ("quick", "paper", "cpu-tiny", "gpu-short", "gpu-nightly")
#: ``torch.compile`` modes (``thermocheck.nets.train.COMPILE_MODES``, kept here so that the
#: parser does not import torch).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thermocheck",
        description="Check the ideal-gas thermodynamics of SGD (Sadrtdinov et al., 2025).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser(
        "verify", help="simulate a preset, check every law on every protocol, write a report",
        description="Simulate the preset's grids, check every law on every protocol and write "
                    "report.json, report.md and figures/. Exit code: 0 every applicable law "
                    "passed, 1 a law failed, 3 some inconclusive and none failed, 2 usage error.",
    )
    verify.add_argument("--substrate", choices=("isotropic", "net"), default="isotropic",
                        help="isotropic-noise simulator (default) or networks (thermocheck.nets)")
    verify.add_argument("--protocol", choices=PROTOCOL_CHOICES, default="all",
                        help="training protocol to check (default: all three)")
    verify.add_argument("--preset", choices=PRESET_CHOICES, default="quick",
                        help="quick (under a minute, fast-equilibrating ranges) or paper "
                             "(the paper's ranges); default quick")
    verify.add_argument("--out", metavar="DIR", default=None,
                        help="report folder (default: a new reports/verify-<preset>-<time>/)")
    verify.add_argument("--seed", type=int_at_least(0, "seed"), default=0,
                        help="random seed, an integer >= 0 (default 0)")
    verify.add_argument("--dim", type=int_at_least(2, "dim"), default=None, metavar="D",
                        help="parameter dimension d >= 2 (default: the preset's)")
    verify.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress lines on stderr")
    verify.add_argument("--quiet", "-q", action="store_true",
                        help="no progress lines and no summary table: only the report path")
    nets = verify.add_argument_group("networks", "options of --substrate net")
    nets.add_argument("--model", choices=("convnet", "resnet18"), default=None,
                      help="architecture (default: the preset's)")
    nets.add_argument("--dataset", choices=("digits", "synthetic", "cifar10", "cifar100"),
                      default=None, help="dataset (default: the preset's)")
    nets.add_argument("--data-dir", metavar="DIR", default=None,
                      help="folder holding cifar-10-batches-py/ or cifar-100-python/")
    nets.add_argument("--device", default=None, help="torch device, e.g. cuda or cpu")
    nets.add_argument("--iters", type=int_at_least(1, "iters"), default=None,
                      help="training iterations per model (default: the preset's)")
    nets.add_argument("--compile", choices=COMPILE_MODES, default=None, metavar="MODE",
                      help="run the training step through torch.compile in this mode ("
                           + ", ".join(COMPILE_MODES) + "); default: eager")
    from thermocheck.sweep import add_sweep_arguments

    add_sweep_arguments(verify)
    verify.set_defaults(run=_verify, command_parser=verify)
    return parser


def _run_net(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Hand ``--substrate net`` to ``thermocheck.nets.cli_verify(args)``, when it exists."""
    try:
        nets = importlib.import_module("thermocheck.nets")
    except ImportError as err:
        parser.error(f"--substrate net needs thermocheck.nets, which cannot be imported ({err})")
    cli_verify = getattr(nets, "cli_verify", None)
    if cli_verify is None:
        parser.error("--substrate net is not available: thermocheck.nets has no cli_verify "
                     "in this installation; use --substrate isotropic")
    usage_errors: tuple[type[Exception], ...] = (
        InvalidParameterError, getattr(nets, "DatasetUnavailableError", InvalidParameterError))
    try:
        return int(cli_verify(args))
    except usage_errors as err:  # an invalid value, a dataset that is not there
        parser.error(str(err))


def _verify(args: argparse.Namespace, argv: Sequence[str]) -> int:
    parser = args.command_parser
    args.command_line = shlex.join(["thermocheck", *argv])
    if args.substrate == "net":
        return _run_net(args, parser)
    from thermocheck.report import print_outcome
    from thermocheck.sweep import sweep_options
    from thermocheck.theory import PROTOCOLS
    from thermocheck.verify import verify

    protocols = PROTOCOLS if args.protocol == "all" else (args.protocol,)
    try:
        results, path = verify(args.substrate, protocols, args.preset, args.out, args.seed,
                               args.dim, args.progress and not args.quiet,
                               command=args.command_line,
                               sweep=sweep_options(args))
    except InvalidParameterError as err:  # an invalid value the options let through
        parser.error(str(err))
    return print_outcome(results, path, table=not args.quiet)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse exits with 2 on usage errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.run(args, argv))


if __name__ == "__main__":
    sys.exit(main())
