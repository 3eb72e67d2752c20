"""``bench/verify_bench.py``: its command line has the benches' common options, and its report gives the ratio of a
cold verify to a cold resolve. The bench itself needs an index and is never run by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def modules(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import common
    import verify_bench

    return common, verify_bench


def _options(parser) -> set[str]:
    return {action.option_strings[-1] for action in parser._actions if action.option_strings}


def test_the_verify_bench_has_the_common_options(modules):
    common, verify_bench = modules
    shared = _options(common.bench_parser("x", "doc", default_sets=("s",), timeout=1.0, quick_help="q"))
    assert shared | {"--repeat"} <= _options(verify_bench.build_parser())


def test_the_report_gives_the_cold_ratio(modules):
    _common, verify_bench = modules
    results = {"date": "2026-12-02", "index": "a local mirror", "runs": {"small": [
        {"resolve_cold": 4.0, "verify_cold": 1.0, "verify_warm": 0.5},
        {"resolve_cold": 6.0, "verify_cold": 1.5, "verify_warm": 0.5},
        {"resolve_cold": 5.0, "verify_cold": 1.25, "verify_warm": 0.5},
        {"error": "verify_cold: boom"},
    ]}}
    text = verify_bench.render(results, None)
    assert "| small | 5.00 s (4.00-6.00) | 1.25 s (1.00-1.50) | 0.50 s (0.50-0.50) | 0.25 |" in text
    assert "small: failed: verify_cold: boom" in text
