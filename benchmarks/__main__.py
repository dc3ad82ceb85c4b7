"""``python -m benchmarks [SUITE ...] [--quick] [--stack local]``: run suites, print the table."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from benchmarks.common import format_table
from clickstream.settings import Settings, add_settings_arguments

SUITES = ("producer", "pipeline", "spark", "streaming-peers")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suites", nargs="*", help=f"suites to run (default: all of {', '.join(SUITES)})")
    parser.add_argument("--quick", action="store_true", help="smaller inputs (a smoke run)")
    add_settings_arguments(parser, ["general"])
    args = parser.parse_args(argv)
    flags = vars(args)
    if flags.get("stack") is None:
        flags["stack"] = "local"
    settings = Settings.from_sources(flags, os.environ)
    rows = []
    for suite in args.suites or SUITES:
        module = importlib.import_module(f"benchmarks.{suite.replace('-', '_')}")
        rows.extend(module.run(settings, args.quick))
        print(format_table(rows), flush=True)
        print()
    print(format_table(rows))
    return 0 if all(m.met is not False for m in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
