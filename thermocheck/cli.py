"""The ``thermocheck`` command line. ``thermocheck verify`` checks every law on every protocol.

Exit codes of ``thermocheck verify`` (:data:`EXIT_CODES_HELP`, also in ``--help``):

0
    Every applicable law passed.
1
    A law failed: a deviation from what the theory predicts for that substrate. The known
    deviations of :mod:`thermocheck.deviations` (the SDE form of V1 on networks, Appendix G) are
    reported with their measured size and cause, never counted.
2
    A usage error, found before any work: an invalid option or value, an ``--out`` or ``--cache``
    that cannot take files, a missing optional dependency (submitit for ``--executor slurm``,
    scikit-learn or the CIFAR files for a network dataset), a substrate this installation cannot
    run. One line on standard error, no traceback.
3
    No law failed, but some were inconclusive (or nothing applicable was checked).
4
    An internal or environment error during the run (a crashed worker or shard, a write that
    failed): the cause goes to standard error and into ``report.md``, with whatever was measured.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from thermocheck import substrates
from thermocheck._argtypes import int_at_least
from thermocheck.errors import (
    DatasetUnavailableError,
    InvalidParameterError,
    MissingDependencyError,
    RunError,
)

__all__ = ["EXIT_CODES_HELP", "build_parser", "main"]

#: The exit codes, as ``thermocheck verify --help`` shows them.
EXIT_CODES_HELP = """\
exit codes:
  0  every applicable law passed
  1  a law failed: a deviation from what the theory predicts for that substrate
     (known deviations, such as the SDE form of V1 on networks, are shown, never counted)
  2  usage error, found before any work: invalid option or value, an --out or --cache
     that cannot take files, a missing optional dependency (submitit for --executor
     slurm, scikit-learn or CIFAR files for a network dataset)
  3  no law failed, but some were inconclusive
  4  internal or environment error during the run (a crashed worker, a write that
     failed): the cause is printed and written into report.md
"""

#: Errors that mean the command was asked for something it cannot do: exit code 2.
_USAGE_ERRORS = (InvalidParameterError, MissingDependencyError, DatasetUnavailableError)

PROTOCOL_CHOICES = ("fixed_sphere", "fixed_elr", "fixed_lr", "all")
#: ``torch.compile`` modes (``thermocheck.nets.train.COMPILE_MODES``, kept here so that the
#: parser does not import torch).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: Network datasets (``thermocheck.nets.data.DATASETS``, kept here so that the parser does not
#: import torch).
DATASET_CHOICES = ("digits", "synthetic", "cifar10", "cifar100", "gratings", "gratings-small")


def _preset_choices(registry: Mapping[str, substrates.Substrate]) -> list[str]:
    """Every substrate's presets and deprecated preset names, each once, in declaration order."""
    names = [p for s in registry.values() for p in (*s.presets, *s.aliases)]
    return list(dict.fromkeys(names))


def _preset_help(registry: Mapping[str, substrates.Substrate]) -> str:
    """``--preset``'s help: each substrate's presets with their line, the default first."""
    parts = []
    for s in registry.values():
        listed = "; ".join(f"{name} ({line})" for name, line in s.presets.items())
        parts.append(f"--substrate {s.name}: {listed}; default {s.default_preset}")
    return ". ".join(parts) + ". A preset of another substrate is refused."


def _add_substrate_arguments(verify: argparse.ArgumentParser) -> None:
    """``--substrate`` and ``--preset``: choices and help from :mod:`thermocheck.substrates`."""
    registry = substrates.substrates()
    verify.add_argument("--substrate", choices=tuple(registry),
                        default=substrates.DEFAULT_SUBSTRATE,
                        help="; ".join(f"{s.name}: {s.summary}" for s in registry.values())
                        + f" (default {substrates.DEFAULT_SUBSTRATE})")
    verify.add_argument("--preset", choices=_preset_choices(registry), default=None,
                        help=_preset_help(registry))


def _add_simulator_arguments(verify: argparse.ArgumentParser) -> None:
    group = verify.add_argument_group("simulator", "options of --substrate isotropic")
    group.add_argument("--momentum", type=_momentum, default=0.0, metavar="BETA",
                       help="SGD momentum β in [0, 1) on the simulator, as torch.optim.SGD "
                            "(default 0: plain SGD); the rate axis is scaled by (1 − β)^1.5")
    group.add_argument("--nesterov", action="store_true",
                       help="Nesterov momentum (needs --momentum > 0)")


def _add_network_arguments(verify: argparse.ArgumentParser) -> None:
    nets = verify.add_argument_group("networks", "options of --substrate net")
    nets.add_argument("--model", choices=("convnet", "resnet18"), default=None,
                      help="architecture (default: the preset's)")
    nets.add_argument("--dataset", choices=DATASET_CHOICES,
                      default=None, help="dataset (default: the preset's)")
    nets.add_argument("--data-dir", metavar="DIR", default=None,
                      help="folder holding cifar-10-batches-py/ or cifar-100-python/")
    nets.add_argument("--device", default=None, help="torch device, e.g. cuda or cpu")
    nets.add_argument("--iters", type=int_at_least(1, "iters"), default=None,
                      help="training iterations per model (default: the preset's)")
    nets.add_argument("--compile", choices=COMPILE_MODES, default=None, metavar="MODE",
                      help="run the training step through torch.compile in this mode ("
                           + ", ".join(COMPILE_MODES) + "); default: eager")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thermocheck",
        description="Check the ideal-gas thermodynamics of SGD (Sadrtdinov et al., 2025).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser(
        "verify", help="simulate a preset, check every law on every protocol, write a report",
        description="Run a substrate's preset (by default the isotropic-noise simulator's), "
                    "check every law on every protocol and write report.json, report.md and "
                    "figures/.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_substrate_arguments(verify)
    verify.add_argument("--protocol", choices=PROTOCOL_CHOICES, default="all",
                        help="training protocol to check (default: the preset's, all three on "
                             "the simulator)")
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
    _add_simulator_arguments(verify)
    _add_network_arguments(verify)
    from thermocheck.sweep import add_sweep_arguments

    add_sweep_arguments(verify)
    verify.set_defaults(run=_verify, command_parser=verify)
    return parser


def _momentum(text: str) -> float:
    """``--momentum``: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--momentum={text!r} must be a number in [0, 1)"
                                         ) from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"--momentum={text} is invalid: it must be in [0, 1)")
    return value


def _option_flag(parser: argparse.ArgumentParser, dest: str) -> str | None:
    """The command-line flag of option ``dest`` (None: the parser has no such option)."""
    return next((a.option_strings[0] for a in parser._actions if a.dest == dest), None)


def _check_substrate_choice(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """At parse time: resolve ``--preset`` for ``--substrate`` (a preset of another substrate is
    refused, naming the ``--substrate`` to add) and collect the substrate's own options into
    ``args.substrate_options``; an option of another substrate, given, is refused."""
    chosen = substrates.get(args.substrate)
    if args.preset in chosen.aliases:  # warnings are hidden outside __main__: say it here
        print(f"thermocheck verify: --preset {args.preset} is deprecated for --substrate "
              f"{chosen.name}: use --preset {chosen.aliases[args.preset]}", file=sys.stderr)
    try:
        args.preset = substrates.resolve_preset(chosen, args.preset)
    except InvalidParameterError as err:
        parser.error(str(err))
    for other in substrates.substrates().values():
        for dest in set(other.options) - set(chosen.options):
            flag = _option_flag(parser, dest)
            if flag is not None and getattr(args, dest) != parser.get_default(dest):
                parser.error(f"{flag} is an option of --substrate {other.name}, not of "
                             f"--substrate {chosen.name}")
    args.substrate_options = {dest: getattr(args, dest) for dest in chosen.options
                              if _option_flag(parser, dest) is not None}


def _run(args: argparse.Namespace) -> int:
    """:func:`thermocheck.verify.verify` with the parsed options; print the outcome."""
    from thermocheck.report import print_outcome
    from thermocheck.sweep import sweep_options
    from thermocheck.verify import verify

    protocols = None if args.protocol == "all" else [args.protocol]
    results, path = verify(substrate=args.substrate, preset=args.preset, protocols=protocols,
                           seed=args.seed, dim=args.dim, out=args.out,
                           progress=args.progress and not args.quiet, command=args.command_line,
                           sweep=sweep_options(args), **args.substrate_options)
    return print_outcome(results, path, table=not args.quiet)


def _error_folder(args: argparse.Namespace) -> Path:
    """Where the report of a run that stopped on an error goes: ``--out``, else a new default
    folder."""
    from thermocheck.verify import default_out_dir, report_name

    return Path(args.out) if args.out else default_out_dir(report_name(args.substrate,
                                                                       args.preset))


def _run_failed(err: RunError, args: argparse.Namespace) -> int:
    """Exit code 4 for failures during the run: the report of what finished, and the causes."""
    from thermocheck.report import print_outcome, write_error_report

    report = err.report or write_error_report(_error_folder(args), "\n\n".join(err.errors),
                                              command=args.command_line)
    return print_outcome(err.results, report, table=not args.quiet, errors=err.errors)


def _internal_error(args: argparse.Namespace) -> int:
    """Exit code 4 for an unexpected error: its last line on standard error, the traceback in
    ``report.md`` (or on standard error when even that cannot be written)."""
    from thermocheck.report import EXIT_CODES, write_error_report

    cause = traceback.format_exc()
    print(f"thermocheck verify: error during the run: {cause.strip().splitlines()[-1]}",
          file=sys.stderr)
    try:
        folder = write_error_report(_error_folder(args), cause, command=args.command_line)
    except OSError as err:
        print(f"{cause}thermocheck verify: the report could not be written either: {err}",
              file=sys.stderr)
    else:
        print(f"report: {folder / 'report.md'} (with the traceback)")
    return EXIT_CODES["error"]


def _verify(args: argparse.Namespace, argv: Sequence[str]) -> int:
    parser: argparse.ArgumentParser = args.command_parser
    args.command_line = shlex.join(["thermocheck", *argv])
    _check_substrate_choice(parser, args)
    try:
        return _run(args)
    except _USAGE_ERRORS as err:  # an invalid value, an unusable path, a missing dependency
        parser.error(str(err))
    except RunError as err:  # shards failed: reported, with what finished
        return _run_failed(err, args)
    except Exception:  # anything else is an internal or environment error, never 1 or 3
        return _internal_error(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (:data:`EXIT_CODES_HELP`; usage errors exit
    with 2 through argparse)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.run(args, argv))


if __name__ == "__main__":
    sys.exit(main())
