"""``venvsmith env --format summary``: a few lines for a person (``make run`` prints it), the same facts as json."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.test_cli import hermetic, run  # noqa: F401 - hermetic: autouse fixture
from venvsmith.cli import SUMMARY_TAGS

ROOT = Path(__file__).resolve().parents[2]


def test_summary_counts_the_tags_and_names_the_best(capsys):
    code, out, err = run(capsys, "env", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    code, out, err = run(capsys, "env", "--format", "summary")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) <= 4, out
    assert lines[0].startswith(f"python {doc['python_version']}") and doc["markers"]["sys_platform"] in lines[0]
    tags = next(line for line in lines if line.startswith("tags: "))
    assert tags.startswith(f"tags: {len(doc['tags'])}, best first: {', '.join(doc['tags'][:SUMMARY_TAGS])}")
    if len(doc["tags"]) > SUMMARY_TAGS:
        assert f"({len(doc['tags']) - SUMMARY_TAGS} more: --format text)" in tags


def test_make_run_prints_the_summary_not_every_tag():
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe, "no run target"
    commands = recipe.group(1)
    assert re.search(r"venvsmith env --format summary\b", commands), commands
    assert not re.search(r"venvsmith env\s*$", commands, re.MULTILINE), commands
    assert re.search(r"venvsmith venv .* -q\b", commands), commands  # the progress of every pin is not the demo
