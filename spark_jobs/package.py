"""``python -m spark_jobs.package [--out PATH]``: the zip to ship with ``--py-files``.

It holds the ``clickstream`` and ``spark_jobs`` packages (sources only), so executors and
a cluster-mode driver can import them. Third-party libraries (pyarrow, pandas, numpy,
scipy, fsspec, cassandra-driver) must be installed where the driver runs; the executors
only need pyspark's own Python (the jobs' UDF-free plans run in the JVM).
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

PACKAGES = ("clickstream", "spark_jobs")
DEFAULT_OUT = Path("dist") / "clickstream-jobs.zip"


def build_zip(out: Path) -> Path:
    """Write the zip (replacing any old one) and return its absolute path."""
    root = Path(__file__).resolve().parent.parent
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for package in PACKAGES:
            for path in sorted((root / package).rglob("*.py")):
                zf.write(path, path.relative_to(root).as_posix())
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spark_jobs.package", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"zip to write (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    print(build_zip(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
