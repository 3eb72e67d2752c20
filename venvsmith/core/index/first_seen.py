"""Cooldown for indexes that serve no upload time: the time this resolver first saw each file.

``exclude-newer`` compares a file's PEP 700 ``upload-time``. Private mirrors, static PEP 503 trees and
find-links locations give none, so the index cache records when a listing first showed each file (keyed by
its sha256 when the listing gives one, else by its URL) and that instant stands in for the upload time.

The semantics are those of a cooldown: a file this resolver sees for the first time *now* is newer than
any past ``exclude-newer`` instant and so is not used until that instant is moved past its first sighting.
A resolver whose cache is new (or was replaced after corruption) has seen everything "now". Without an
index cache nothing is recorded and files without an upload time keep the old rule (see
``resolver_service.selection``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from ..distfile import DistFile
from .cache import IndexCache
from .pages import listed_upload_time


def file_key(file: DistFile) -> str:
    """What identifies a file across listings: its sha256 when listed, else its URL."""
    digest = file.sha256
    return f"sha256:{digest}" if digest else f"url:{file.url}"


def with_first_seen(files: list[DistFile], cache: IndexCache | None) -> list[DistFile]:
    """``files``, those without an upload time carrying :attr:`DistFile.first_seen` (recorded now if new)."""
    if cache is None:
        return files
    timeless = [i for i, file in enumerate(files) if file.origin != "direct" and not listed_upload_time(file)]
    if not timeless:
        return files
    seen = cache.first_seen([file_key(files[i]) for i in timeless])
    out = list(files)
    for i in timeless:
        when = seen.get(file_key(files[i]))
        if when is not None:
            out[i] = replace(files[i], first_seen=datetime.fromtimestamp(when, UTC))
    return out
