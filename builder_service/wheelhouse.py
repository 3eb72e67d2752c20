"""Simple-index pages for a set of wheels: PEP 503 HTML (served over HTTP, and written into the wheelhouse
archive) and PEP 691 JSON (served over HTTP), with PEP 658/714 core-metadata and PEP 700 sizes and versions.

The HTML API is frozen; JSON carries the same facts and is what clients that ask for it get (see
:func:`negotiate`).
"""

from __future__ import annotations

import html
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packaging.utils import parse_wheel_filename

JSON_MEDIA = "application/vnd.pypi.simple.v1+json"
HTML_MEDIA = "application/vnd.pypi.simple.v1+html"
#: PEP 700: sizes, versions (and upload times) are part of the JSON answer.
JSON_API_VERSION = "1.1"
_JSON_TYPES = {JSON_MEDIA, "application/vnd.pypi.simple.latest+json"}
_HTML_TYPES = {HTML_MEDIA, "application/vnd.pypi.simple.latest+html", "text/html"}

PAGE = '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0"><title>{title}</title>' \
    "</head><body>\n{links}\n</body></html>\n"


@dataclass(frozen=True)
class HouseWheel:
    """One wheel of a wheelhouse: its file name, sha256, and where its bytes are."""

    filename: str
    sha256: str
    href: str
    #: Size in bytes (PEP 700), when known.
    size: int | None = None
    #: sha256 of the wheel's METADATA served at ``<href>.metadata`` (PEP 658/714), when one is.
    metadata_sha256: str | None = None
    #: The wheel's Requires-Python, when it has one.
    requires_python: str | None = None

    @property
    def project(self) -> str:
        return parse_wheel_filename(self.filename)[0]

    @property
    def version(self) -> str:
        return str(parse_wheel_filename(self.filename)[1])


def root_page(wheels: Iterable[HouseWheel]) -> str:
    """``simple/index.html``: one link per project."""
    names = sorted({w.project for w in wheels})
    links = "\n".join(f'<a href="{html.escape(n)}/">{html.escape(n)}</a><br>' for n in names)
    return PAGE.format(title="Simple index", links=links)


def project_page(project: str, wheels: Iterable[HouseWheel]) -> str:
    """``simple/<project>/index.html``: the project's wheels with ``#sha256=`` fragments."""
    mine = sorted((w for w in wheels if w.project == project), key=lambda w: w.filename)
    links = "\n".join(f"<a {_attributes(w)}>{html.escape(w.filename)}</a><br>" for w in mine)
    return PAGE.format(title=f"Links for {html.escape(project)}", links=links)


def _attributes(w: HouseWheel) -> str:
    attrs = [f'href="{html.escape(w.href)}#sha256={w.sha256}"']
    if w.requires_python:
        attrs.append(f'data-requires-python="{html.escape(w.requires_python)}"')
    if w.metadata_sha256:  # PEP 714's name, and PEP 658's for older clients
        attrs.append(f'data-core-metadata="sha256={w.metadata_sha256}"')
        attrs.append(f'data-dist-info-metadata="sha256={w.metadata_sha256}"')
    return " ".join(attrs)


def root_json(wheels: Iterable[HouseWheel]) -> str:
    """PEP 691 project list."""
    names = sorted({w.project for w in wheels})
    return json.dumps({"meta": {"api-version": JSON_API_VERSION}, "projects": [{"name": n} for n in names]})


def project_json(project: str, wheels: Iterable[HouseWheel]) -> str:
    """PEP 691 project page: each wheel's url, sha256, size, requires-python and core-metadata."""
    mine = sorted((w for w in wheels if w.project == project), key=lambda w: w.filename)
    files = []
    for w in mine:
        entry: dict[str, object] = {"filename": w.filename, "url": w.href, "hashes": {"sha256": w.sha256}}
        if w.requires_python:
            entry["requires-python"] = w.requires_python
        if w.metadata_sha256:
            entry["core-metadata"] = {"sha256": w.metadata_sha256}
            entry["dist-info-metadata"] = {"sha256": w.metadata_sha256}
        if w.size is not None:
            entry["size"] = w.size
        files.append(entry)
    versions = sorted({w.version for w in mine})
    return json.dumps({"meta": {"api-version": JSON_API_VERSION}, "name": project, "files": files,
                       "versions": versions})


def negotiate(accept: str | None) -> tuple[Literal["json", "html"], str] | None:
    """The page format and Content-Type for an ``Accept`` header (PEP 691), None when nothing offered fits.

    No header, or only wildcards: HTML (what every client understands). Otherwise the highest ``q`` wins, JSON
    on a tie; an HTML answer has the type the client named (``text/html`` unless it asked for the PEP 691 one).
    """
    if not accept or not accept.strip():
        return "html", "text/html; charset=utf-8"
    json_q = html_q = 0.0
    html_type = "text/html; charset=utf-8"
    wildcard_q = 0.0
    for item in accept.split(",")[:32]:
        media, _, params = item.strip().partition(";")
        media = media.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        if media in _JSON_TYPES:
            json_q = max(json_q, q)
        elif media in _HTML_TYPES and q > html_q:
            html_q = q
            html_type = HTML_MEDIA if media != "text/html" else "text/html; charset=utf-8"
        elif media in ("*/*", "application/*", "text/*"):
            wildcard_q = max(wildcard_q, q)
    if json_q > 0 and json_q >= max(html_q, wildcard_q):
        return "json", JSON_MEDIA
    if max(html_q, wildcard_q) > 0:
        return "html", html_type
    return None


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
