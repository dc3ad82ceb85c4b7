"""Entry point of the ``clickstream`` console script.

Each subcommand lives in its own module of this package with two functions:
``register(subparsers) -> ArgumentParser`` adds its parser, ``run(settings, args) -> int``
does the work. The settings object is built here, once, from flags and environment.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from clickstream.settings import Settings, SettingsError
from launch.cli import CliError

log = logging.getLogger("clickstream")

SUBCOMMANDS = ("services", "schema", "dashboard", "produce", "stream", "batch", "pagerank", "reconcile",
               "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clickstream",
        description="Real-time clickstream analysis: replay, stream, batch, PageRank, dashboard.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"launch.cli.{name}")
        sub_parser = module.register(sub)
        sub_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
