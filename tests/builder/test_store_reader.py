"""Verified chunked reads of the store (what GetArtifact and the HTTP endpoint send)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder_service.digest import CHUNK_SIZE, Digest
from builder_service.errors import BlobNotFound, DigestMismatch, InvalidRange
from builder_service.store import FilesystemStore
from builder_service.store.reader import verified_chunks, verify_blobs

DATA = bytes(range(256)) * 5  # 1280 bytes


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FilesystemStore]:
    s = FilesystemStore(tmp_path / "store")
    yield s
    s.close()


def flip(store: FilesystemStore, digest: Digest, at: int) -> None:
    path = store.blob_path(digest)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@given(offset=st.integers(0, len(DATA)), limit=st.integers(0, len(DATA) + 10), chunk=st.integers(1, 700))
def test_pieces_are_the_asked_range(tmp_path_factory, offset: int, limit: int, chunk: int) -> None:
    s = FilesystemStore(tmp_path_factory.mktemp("s"))
    digest = s.put_bytes(DATA)
    pieces = list(verified_chunks(s, digest, offset, limit, chunk))
    assert b"".join(p for _, p in pieces) == (DATA[offset:offset + limit] if limit else DATA[offset:])
    position = offset
    for at, piece in pieces:
        assert at == position and piece
        position += len(piece)
    s.close()


def test_the_last_piece_is_held_back_until_the_blob_matched(store: FilesystemStore) -> None:
    big = os.urandom(3 * CHUNK_SIZE + 5)
    digest = store.put_bytes(big)
    flip(store, digest, 0)  # only the end of the read can tell
    got = []
    with pytest.raises(DigestMismatch):
        for _, piece in verified_chunks(store, digest):
            got.append(piece)
    sent = b"".join(got)
    assert 0 < len(sent) < len(big) and sent[1:] == big[1:len(sent)]  # a prefix, never the whole blob
    assert not store.contains(digest) and store.stats.corrupt_removed == 1  # quarantined


def test_a_range_far_from_the_corruption_still_fails(store: FilesystemStore) -> None:
    digest = store.put_bytes(DATA)
    flip(store, digest, len(DATA) - 1)
    with pytest.raises(DigestMismatch):
        list(verified_chunks(store, digest, 0, 10, chunk=256))
    with pytest.raises(BlobNotFound):
        list(verified_chunks(store, digest, 0, 10))


def test_empty_range_of_a_corrupt_blob_fails_too(store: FilesystemStore) -> None:
    digest = store.put_bytes(DATA)
    flip(store, digest, 0)
    with pytest.raises(DigestMismatch):
        list(verified_chunks(store, digest, len(DATA)))


def test_bad_ranges(store: FilesystemStore) -> None:
    digest = store.put_bytes(DATA)
    for offset, limit in ((-1, 0), (0, -1), (len(DATA) + 1, 0)):
        with pytest.raises(InvalidRange):
            list(verified_chunks(store, digest, offset, limit))


def test_verify_blobs(store: FilesystemStore) -> None:
    good, bad = store.put_bytes(b"good"), store.put_bytes(DATA)
    verify_blobs(store, [good, bad])
    flip(store, bad, 3)
    with pytest.raises(DigestMismatch):
        verify_blobs(store, [good, bad])
    assert store.contains(good) and not store.contains(bad)
