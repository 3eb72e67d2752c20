"""The caps on what a (possibly hostile) index or archive can make a server read, hold or write.

One place for every size, count and time bound of index responses and of the archives built from them
(wheels installed into venvs, sdists unpacked for a build, venv archives unpacked on a client), each with
the reason for its value. :func:`archive_problem` is the one check of an archive's totals.
"""

from __future__ import annotations

__all__ = [
    "MAX_DOWNLOAD_BYTES",
    "MAX_FETCH_SECONDS",
    "MAX_MEMBERS",
    "MAX_METADATA_BYTES",
    "MAX_PAGE_BYTES",
    "MAX_RANGE_BYTES",
    "MAX_RATIO",
    "MAX_UNPACKED_BYTES",
    "RATIO_FLOOR_BYTES",
    "archive_problem",
]

MiB = 1 << 20
GiB = 1 << 30

#: A project page (HTML or JSON simple API) read from an index. The largest real pages (projects with tens of
#: thousands of files, nightly builds) are around 20-30 MB of JSON; 64 MiB leaves headroom while a hostile
#: endless page costs at most this much memory per fetch.
MAX_PAGE_BYTES = 64 * MiB
#: A ``.metadata`` file (PEP 658) or a METADATA member (or PKG-INFO) read from an archive: real ones are
#: kilobytes; a bigger one is refused before it is inflated, and inflating never produces more than the member
#: declares.
MAX_METADATA_BYTES = 4 * MiB
#: One HTTP range read of a remote wheel (the zip tail, one member): the spool of a whole small wheel is
#: 32 MiB (``metadata_fetch.SPOOL_BYTES``), so no single range answer needs more.
MAX_RANGE_BYTES = 32 * MiB
#: A wheel or sdist downloaded without a declared size: the largest real wheels (GPU libraries) are about
#: 2-3 GB; when the index declares the file's size, that size is the cap instead.
MAX_DOWNLOAD_BYTES = 4 * GiB
#: Wall-clock seconds one fetch (connect, headers and whole body, with its retries) may take in all, whatever
#: the caller's deadline; a download gets :data:`MAX_DOWNLOAD_SECONDS`. Per-read socket timeouts reset on
#: every byte, so only a total bound stops a server that trickles.
MAX_FETCH_SECONDS = 120.0
#: The total of a wheel or sdist download (4 GiB at 10 MB/s takes about 7 minutes).
MAX_DOWNLOAD_SECONDS = 1800.0

#: Uncompressed bytes of one archive (wheel, sdist, venv archive) in all. The largest real wheels unpack to
#: about 5 GB; a venv of them to about 10 GB.
MAX_UNPACKED_BYTES = 16 * GiB
#: Uncompressed / compressed size of a whole archive above which it is a bomb. Real wheels and sdists compress
#: 2-10x (text) and rarely 50x (sparse data files); zip and tar bombs reach 1000x and more.
MAX_RATIO = 200
#: Archives unpacking to less than this are not held to :data:`MAX_RATIO` (a small wheel with one highly
#: compressible data file is harmless): the ratio matters only where the size does.
RATIO_FLOOR_BYTES = 32 * MiB
#: Members (files, directories, links) of one archive: the largest real wheels have about 20-30k files; a
#: venv archive of many of them some 100k. Each member costs memory for its header before any byte is written.
MAX_MEMBERS = 500_000


def unpacked_cap(compressed: int, max_unpacked: int = MAX_UNPACKED_BYTES) -> int:
    """The most bytes an archive of ``compressed`` bytes may unpack to (absolute cap and ratio together)."""
    return min(max_unpacked, max(RATIO_FLOOR_BYTES, compressed * MAX_RATIO))


def archive_problem(
    *, members: int, unpacked: int, compressed: int, max_unpacked: int = MAX_UNPACKED_BYTES
) -> str | None:
    """Why an archive of ``compressed`` bytes with ``members`` members unpacking to ``unpacked`` bytes (so far,
    or as its headers declare) is refused, or ``None``."""
    if members > MAX_MEMBERS:
        return f"more than {MAX_MEMBERS} members"
    if unpacked > max_unpacked:
        return f"unpacks to more than {max_unpacked} bytes"
    if unpacked > unpacked_cap(compressed, max_unpacked):
        return (f"unpacks to more than {MAX_RATIO} times its {compressed} compressed bytes "
                f"({unpacked} bytes or more): a compression bomb")
    return None
