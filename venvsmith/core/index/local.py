"""Files on disk: find-links directories, single archives, and PEP 503 static trees behind file:// URLs."""

from __future__ import annotations

import os
import stat
import threading
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.utils import NormalizedName, canonicalize_name

from ..distfile import DistFile
from .pages import parse_html_page, parse_links_page


def is_file_url(url: str) -> bool:
    return url[:7].lower() == "file://"


def file_url_to_path(url: str) -> Path:
    """The local path of a ``file://`` URL (``file:///x``, ``file://localhost/x``)."""
    parts = urlsplit(url)
    if os.name == "nt":
        from urllib.request import url2pathname  # a sizeable import, for Windows only

        return Path(url2pathname(unquote(parts.path)))
    return Path(unquote(parts.path))


def location_path(location: str) -> Path | None:
    """The local path a find-links location or index names, or ``None`` for a remote URL."""
    if is_file_url(location):
        return file_url_to_path(location)
    if "://" in location:
        return None
    return Path(location).expanduser()


def list_directory(directory: Path, index: str, origin: str) -> list[DistFile]:
    """Distribution files directly inside ``directory`` (not recursive, like pip); sorted by name.

    A ``<file>.metadata`` next to a wheel or sdist is taken as its PEP 658 metadata file.
    """
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return []
    names = {entry.name for entry in entries}
    out = []
    for entry in entries:
        if not entry.is_file():
            continue
        try:
            size = entry.stat().st_size
        except OSError:
            continue
        dist = DistFile.from_listing(
            entry.name,
            Path(entry.path).absolute().as_uri(),
            index,
            size=size,
            core_metadata=f"{entry.name}.metadata" in names,
            origin=origin,
        )
        if dist is not None:
            out.append(dist)
    return out


def with_local_sizes(files: list[DistFile]) -> list[DistFile]:
    """``files`` with the size of each linked file that is on disk and was listed without one (a PEP 503
    page has no size attribute; lock files need it). A missing file keeps ``size=None``."""
    out = []
    for file in files:
        if file.size is None and file.is_local:
            try:
                st = file_url_to_path(file.url).stat()
            except (OSError, ValueError):
                st = None
            if st is not None and stat.S_ISREG(st.st_mode):
                file = replace(file, size=st.st_size)
        out.append(file)
    return out


def find_links_files(path: Path, index: str) -> list[DistFile]:
    """Files offered by a local find-links location: a directory, an HTML page, or one archive."""
    if path.is_dir():
        return list_directory(path, index, "find-links")
    if not path.is_file():
        return []
    if path.suffix.lower() in (".html", ".htm"):
        body = path.read_bytes()
        return with_local_sizes(parse_links_page(body, "text/html", path.absolute().as_uri(), index))
    dist = DistFile.from_listing(
        path.name, path.absolute().as_uri(), index, size=path.stat().st_size, origin="find-links"
    )
    return [dist] if dist else []


def static_index_files(root: Path, name: NormalizedName, index: str) -> list[DistFile] | None:
    """Files of ``name`` in a PEP 503 tree on disk: ``<root>/<name>/index.html``, or the files of that
    directory when it has no ``index.html``; ``None`` when the tree does not know the name."""
    project = root / name
    if not project.is_dir():
        # Trees written by older tools keep the project's own spelling ("Foo_Bar/").
        project = _tree_spellings(root).get(name, project)
    page = project / "index.html"
    try:
        st = page.stat()
    except OSError:
        st = None
    if st is not None and stat.S_ISREG(st.st_mode):
        # Parsed pages are remembered while the file is unchanged (a server reads the same trees all day).
        key = (str(page), st.st_mtime_ns, st.st_size, st.st_ino, index, name)
        with _memo_lock:
            held = _page_memo.get(key)
        if held is None:
            text = page.read_bytes().decode("utf-8", errors="replace")
            held = tuple(with_local_sizes(parse_html_page(text, project.absolute().as_uri() + "/", index, name)))
            with _memo_lock:
                _page_memo[key] = held
                while len(_page_memo) > _MEMO_ENTRIES:
                    _page_memo.pop(next(iter(_page_memo)))
        return list(held)
    if project.is_dir():
        return [f for f in list_directory(project, index, "index") if f.name == name]
    return None


_MEMO_ENTRIES = 4096
_memo_lock = threading.Lock()
_page_memo: dict[tuple, tuple[DistFile, ...]] = {}
_spellings: dict[tuple, dict[NormalizedName, Path]] = {}


def _tree_spellings(root: Path) -> dict[NormalizedName, Path]:
    """``canonical name -> project directory`` of a tree, remembered while the root directory is unchanged
    (asking a tree for a name it lacks would otherwise list the whole tree each time)."""
    try:
        st = root.stat()
    except OSError:
        return {}
    key = (str(root), st.st_mtime_ns, st.st_ino)
    with _memo_lock:
        held = _spellings.get(key)
    if held is None:
        held = {canonicalize_name(p.name): p for p in _subdirs(root)}
        with _memo_lock:
            for old in [k for k in _spellings if k[0] == key[0]]:
                del _spellings[old]
            _spellings[key] = held
    return held


def _subdirs(root: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(root) if e.is_dir()]
    except OSError:
        return []
