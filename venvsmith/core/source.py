"""The one interface between the pure resolver core and the I/O edge that lists files and reads metadata."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from packaging.utils import NormalizedName

from .distfile import DistFile
from .metadata import CoreMetadata


class PackageSource(Protocol):
    """Where candidates come from. Implementations must be thread-safe.

    The resolver core only ever calls these methods; the index client (HTTP, file://, find-links, caches,
    several indexes unioned by strategy) and the in-memory test index both implement it.
    """

    def files(self, name: NormalizedName) -> Sequence[DistFile]:
        """Every file of ``name`` the configured locations offer (after the index strategy), unfiltered.

        Raises :class:`~venvsmith.core.errors.IndexUnavailable` when a needed index cannot be read.
        An unknown name gives an empty sequence.
        """
        ...

    def metadata(self, file: DistFile) -> CoreMetadata:
        """Core metadata of ``file`` without running package code.

        Raises :class:`~venvsmith.core.errors.DynamicMetadata` for an sdist whose dependencies are dynamic,
        :class:`~venvsmith.core.errors.InvalidDistribution` for unreadable metadata and
        :class:`~venvsmith.core.errors.IndexUnavailable` when the file cannot be fetched.
        """
        ...

    def resolve_file_url(self, url: str) -> DistFile:
        """The file a direct URL requirement (``name @ url``) names, with its sha256 computed.

        Raises :class:`~venvsmith.core.errors.IndexUnavailable` when it cannot be fetched and
        :class:`~venvsmith.core.errors.InvalidInput` when the URL is not a wheel or sdist.
        """
        ...

    def prefetch_files(self, names: Iterable[NormalizedName]) -> None:
        """Hint: these names' listings will likely be needed soon. Must not block or raise."""
        ...

    def prefetch_metadata(self, files: Iterable[DistFile]) -> None:
        """Hint: these files' metadata will likely be needed soon. Must not block or raise."""
        ...
