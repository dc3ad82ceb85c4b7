"""The README's commands and example are the ones CI and the tests run."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def test_readme_python_api_example_is_the_tested_example_file() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert (REPO / "examples" / "custom_aggregate.py").read_text() in blocks


def test_readme_two_commands_are_what_ci_runs() -> None:
    first_block = re.search(r"## Two commands\n\n```bash\n(.*?)```", README, flags=re.S).group(1)
    commands = [ln for ln in first_block.splitlines() if ln and not ln.startswith("#")]
    assert commands == ["./scripts/setup && . .venv/bin/activate && clickstream demo --clicks 200000",
                        "./scripts/test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert "./scripts/setup" in ci and "./scripts/test" in ci
