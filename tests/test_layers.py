"""The two services never name each other (not even in docstrings): they meet only in venvsmith.cli.compose,
through the ResolverClient and MetadataPreparer protocols of venvsmith.core.resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("package", "other"), [("builder_service", "resolver_service"),
                                                ("resolver_service", "builder_service")])
def test_a_service_package_never_names_the_other(package: str, other: str):
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if other in line
    ]
    assert offenders == []
