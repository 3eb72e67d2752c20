"""A stored wheel's core metadata (PEP 658/714 ``.metadata`` files): read once from the wheel, kept as a blob.

The METADATA member is read straight from the zip's central directory (:func:`~venvsmith.core.index.archives.
wheel_metadata`, the resolver's reader), bounded in size, stored in the CAS and remembered in the action cache
under the wheel's sha256, so a wheelhouse page and its ``.metadata`` files cost one read per wheel ever.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass

from packaging.metadata import parse_email
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from venvsmith.core.distfile import DistFile
from venvsmith.core.errors import InvalidDistribution
from venvsmith.core.index.archives import wheel_metadata

from .action_cache import ActionCacheBase, ActionResult, OutputRef
from .action_keys import WheelMetadata
from .digest import Digest
from .errors import BlobNotFound, BuilderError
from .store import Store

#: Largest METADATA member (declared, compressed or not) read out of a wheel.
MAX_METADATA_BYTES = 4 << 20
METADATA_MEDIA = "application/octet-stream"


@dataclass(frozen=True)
class CoreMetadata:
    """The stored METADATA of one wheel, and the one field an index page repeats (PEP 503 requires-python)."""

    ref: OutputRef
    requires_python: str | None


def core_metadata(store: Store, actions: ActionCacheBase, wheel_filename: str, wheel: Digest) -> CoreMetadata:
    """The wheel's METADATA as a stored blob (computed on first use); raises :class:`BlobNotFound` when the
    wheel is not stored and ``FAILED_PRECONDITION`` when it has no readable METADATA."""
    file = DistFile.from_listing(wheel_filename, "", "")
    if file is None or not file.is_wheel:
        raise BuilderError("INVALID_ARGUMENT", f"not a wheel file name: {wheel_filename!r}")

    def extract() -> ActionResult:
        data = _read_metadata(store, file, wheel)
        digest = store.put_stream([data], Digest.of_bytes(data))
        return ActionResult((OutputRef(digest, METADATA_MEDIA, "metadata", f"{wheel_filename}.metadata"),),
                            meta={"requires_python": _requires_python(data) or ""})

    result, _ = actions.get_or_compute(WheelMetadata(wheel.hash, wheel.size_bytes).key(), extract)
    return CoreMetadata(result.outputs[0], result.meta.get("requires_python") or None)


def _read_metadata(store: Store, file: DistFile, wheel: Digest) -> bytes:
    with store.pin([wheel]):
        path = store.path(wheel)
        if path is None:
            raise BlobNotFound(wheel)

        def bounded(info: zipfile.ZipInfo) -> None:
            if max(info.file_size, info.compress_size) > MAX_METADATA_BYTES:
                raise InvalidDistribution(file.filename, f"METADATA larger than {MAX_METADATA_BYTES} bytes")

        with open(path, "rb") as fh:
            data = wheel_metadata(fh, file, before_read=bounded)
    if len(data) > MAX_METADATA_BYTES:  # the zipfile path reads what the member declares: checked above too
        raise InvalidDistribution(file.filename, f"METADATA larger than {MAX_METADATA_BYTES} bytes")
    return data


def _requires_python(data: bytes) -> str | None:
    """The Requires-Python of METADATA when it is a valid specifier set (an invalid one is left off the page)."""
    raw, _ = parse_email(data)
    value = raw.get("requires_python")
    if not value:
        return None
    try:
        return str(SpecifierSet(value))
    except InvalidSpecifier:
        return None
