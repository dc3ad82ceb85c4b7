"""The ``clickstream`` command itself: a fast ``--help``, ``--version``, ``python -m clickstream``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from launch.cli.main import SUBCOMMANDS, build_parser, main

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("pyarrow", "scipy", "kafka", "pyspark", "bokeh", "dask", "distributed", "cassandra", "pandas",
         "numpy", "prometheus_client")


def _modules_after(code: str) -> set[str]:
    """Top-level packages imported by ``code`` run in a fresh interpreter on this checkout."""
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_help_imports_no_heavy_package() -> None:
    loaded = _modules_after("from launch.cli.main import main\n"
                            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert "launch" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("command", ["produce", "stream", "dashboard", "services", "schema"])
def test_a_subcommands_help_imports_no_spark_or_bokeh(command: str) -> None:
    loaded = _modules_after("from launch.cli.main import main\n"
                            f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass")
    assert loaded.isdisjoint({"pyspark", "bokeh", "dask", "distributed", "scipy"}), command


def test_help_lists_every_subcommand_and_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in SUBCOMMANDS)
    assert "3    reconcile found differences" in text and "4    pagerank did not converge" in text


def test_only_the_named_subcommand_gets_its_full_parser() -> None:
    import argparse

    parser = build_parser(["produce", "--dry-run"])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert any(a.dest == "dry_run" for a in sub.choices["produce"]._actions)
    assert not any(a.dest == "rate_per_s" for a in sub.choices["demo"]._actions)  # a stub


def test_version_from_the_console_entry_and_python_m_clickstream() -> None:
    for argv in (["-m", "launch.cli.main", "--version"], ["-m", "clickstream", "--version"]):
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("clickstream ") and done.stdout.split()[1][0].isdigit(), done.stdout


def test_python_m_clickstream_runs_a_subcommand(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "clickstream", "produce", "--generate-only",
                           str(tmp_path / "d.tsv"), "--synthetic-rows", "20"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote 20 synthetic rows" in done.stdout and (tmp_path / "d.tsv").is_file()
