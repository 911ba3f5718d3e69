"""The README's code blocks marked as tested run as they are, and its benchmark table is the
committed one."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _tested_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(r"<!-- tested[^>]*-->\s*```python\n(.*?)```", text, re.S)


@pytest.mark.fast
def test_readme_has_tested_blocks() -> None:
    assert _tested_blocks(), "README.md lost its tested code blocks"


@pytest.mark.fast
@pytest.mark.parametrize("block", _tested_blocks())
def test_readme_block_runs(block: str) -> None:
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})


@pytest.mark.fast
def test_readme_quotes_the_committed_benchmark_table() -> None:
    """The Performance table is ``benchmarks/results/benchmark.md`` as ``python -m benchmarks``
    wrote it, not numbers typed by hand."""
    table = (README.parent / "benchmarks" / "results" / "benchmark.md").read_text(encoding="utf-8")
    assert table.strip() in README.read_text(encoding="utf-8")
