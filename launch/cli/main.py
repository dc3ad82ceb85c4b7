"""Entry point of the ``clickstream`` console script (and of ``python -m clickstream``).

Each subcommand lives in its own module of this package with two functions:
``register(subparsers) -> ArgumentParser`` adds its parser, ``run(settings, args) -> int``
does the work, and a one-line ``HELP``. The settings object is built here, once, from
flags and environment.

Fast ``--help``: ``main`` registers the full parser of the one subcommand on the command
line only; every other subcommand gets a stub carrying its ``HELP``. The subcommand
modules import no role at module level (the roles, with pyarrow, scipy, kafka, dask,
pyspark or bokeh behind them, are imported inside ``register`` or ``run``), so
``clickstream --help`` imports none of them (``tests/launch/cli/test_main.py``).

Exit codes: 0 done; 1 an error (one line on stderr); 2 a usage or settings error; 3
``reconcile`` found differences; 4 ``pagerank`` did not converge; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from clickstream.settings import Settings, SettingsError
from launch.cli import CliError

log = logging.getLogger("clickstream")

EXIT_CODES = """exit codes:
  0    done
  1    an error (one line on stderr)
  2    a usage or settings error
  3    reconcile found differences (corrected, unless --dry-run)
  4    pagerank did not converge within --max-iter
  130  interrupted (Ctrl-C)"""
SUBCOMMANDS = ("services", "schema", "dashboard", "produce", "stream", "batch", "pagerank", "reconcile",
               "demo")


def version() -> str:
    """The installed distribution's version (``pyproject.toml``), or ``unknown`` from a bare checkout."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("clickstream")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


class _VersionAction(argparse.Action):
    """``--version``: the version is looked up only when asked (importlib.metadata is slow)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the installed version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"{parser.prog} {version()}")
        parser.exit()


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line: its first argument not starting with ``-``."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand; given ``argv``, the full parser of the subcommand it
    names only (the others are stubs with their one-line help, see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="clickstream",
        description="Real-time clickstream analysis: replay, stream, batch, PageRank, dashboard.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = None if argv is None else _command_of(argv)
    for name in SUBCOMMANDS:
        module: ModuleType = importlib.import_module(f"launch.cli.{name}")
        if argv is None or name == wanted:
            sub_parser = module.register(sub)
        else:
            sub_parser = sub.add_parser(name, help=module.HELP)
        sub_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_args(args)
    except SettingsError as exc:
        print(f"clickstream: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.debug("settings: %s", settings.redacted())
    try:
        return int(args._module.run(settings, args) or 0)
    except CliError as exc:
        print(f"clickstream {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"clickstream {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
