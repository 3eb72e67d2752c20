"""Fixtures for the index client tests: sources built from settings and closed at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from venvsmith.core.index import IndexSettings, IndexSource
from venvsmith.core.index.http import HttpClient


@pytest.fixture
def events() -> list[tuple[str, str, str]]:
    return []


@pytest.fixture
def make_source(tmp_path: Path, events: list) -> Iterator[Callable[..., IndexSource]]:
    """``make_source(**settings)`` -> an :class:`IndexSource` (fast retries, events recorded in ``events``).

    ``cache=True`` puts the page/metadata cache in ``tmp_path / "cache"`` (shared by every source of a test).
    """
    sources: list[IndexSource] = []
    clients: list[HttpClient] = []

    def make(cache: bool = False, **settings: Any) -> IndexSource:
        if cache:
            settings.setdefault("cache_dir", tmp_path / "cache")
            for earlier in sources:  # a new source stands for a later process: earlier ones' stores are written
                if earlier.cache is not None:
                    earlier.cache.flush()
        http = HttpClient(timeout=10, retries=settings.get("retries", 3), backoff=0.01)
        source = IndexSource(IndexSettings(**settings), http=http, on_event=lambda *e: events.append(e))
        sources.append(source)
        clients.append(http)
        return source

    yield make
    for source in sources:
        source.close()
    for client in clients:
        client.close()
