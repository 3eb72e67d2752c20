"""PEP 503 pages for a set of wheels: served over HTTP, and written into the wheelhouse archive."""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import parse_wheel_filename

PAGE = '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0"><title>{title}</title>' \
    "</head><body>\n{links}\n</body></html>\n"


@dataclass(frozen=True)
class HouseWheel:
    """One wheel of a wheelhouse: its file name, sha256, and where its bytes are."""

    filename: str
    sha256: str
    href: str

    @property
    def project(self) -> str:
        return parse_wheel_filename(self.filename)[0]


def root_page(wheels: Iterable[HouseWheel]) -> str:
    """``simple/index.html``: one link per project."""
    names = sorted({w.project for w in wheels})
    links = "\n".join(f'<a href="{html.escape(n)}/">{html.escape(n)}</a><br>' for n in names)
    return PAGE.format(title="Simple index", links=links)


def project_page(project: str, wheels: Iterable[HouseWheel]) -> str:
    """``simple/<project>/index.html``: the project's wheels with ``#sha256=`` fragments."""
    mine = sorted((w for w in wheels if w.project == project), key=lambda w: w.filename)
    links = "\n".join(
        f'<a href="{html.escape(w.href)}#sha256={w.sha256}">{html.escape(w.filename)}</a><br>' for w in mine
    )
    return PAGE.format(title=f"Links for {html.escape(project)}", links=links)


def write_tree(dest: Path, wheels: Sequence[tuple[str, str, Path]]) -> None:
    """A self-contained wheelhouse at ``dest``: ``wheels/*.whl`` plus ``simple/`` pages linking them.

    ``wheels`` are (filename, sha256, path of the bytes). pip/uv use it with ``--index-url file://…/simple/``
    or ``--find-links …/wheels``.
    """
    (dest / "wheels").mkdir(parents=True)
    house = []
    for filename, sha256, path in wheels:
        target = dest / "wheels" / filename
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
        house.append(HouseWheel(filename, sha256, f"../../wheels/{filename}"))
    simple = dest / "simple"
    simple.mkdir()
    (simple / "index.html").write_text(root_page(house), encoding="utf-8")
    for project in sorted({w.project for w in house}):
        (simple / project).mkdir()
        (simple / project / "index.html").write_text(project_page(project, house), encoding="utf-8")
