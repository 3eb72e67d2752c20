"""A package source that asks a metadata preparer (a builder) for sdists whose dependencies are dynamic.

Resolution itself never runs package code: only a builder does, in isolation (PrepareMetadata). The resolver
knows it only as a :class:`~venvsmith.core.resolution.MetadataPreparer`, given to it when it is constructed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from packaging.utils import NormalizedName

from venvsmith.core.distfile import DistFile
from venvsmith.core.errors import DynamicMetadata
from venvsmith.core.metadata import CoreMetadata
from venvsmith.core.source import PackageSource

#: ``prepare(file) -> METADATA bytes``, bound to the resolution's target environment and index configuration.
Prepare = Callable[[DistFile], bytes]


class PreparingSource:
    """Delegates to ``source``; on :class:`DynamicMetadata` asks ``prepare``, or, without one, fails saying
    ``why_not`` (there is no builder, or the request turned building off)."""

    def __init__(self, source: PackageSource, prepare: Prepare | None, why_not: str = "") -> None:
        self.source = source
        self.prepare = prepare
        self.why_not = why_not

    def files(self, name: NormalizedName) -> Sequence[DistFile]:
        return self.source.files(name)

    def metadata(self, file: DistFile) -> CoreMetadata:
        try:
            return self.source.metadata(file)
        except DynamicMetadata as exc:
            if self.prepare is None:
                raise DynamicMetadata(exc.filename, f"{exc.message}; {self.why_not}") from None
        if not file.sha256:  # the builder stores what it builds by content: hash the file first
            file = self.source.resolve_file_url(file.url)
        return CoreMetadata.from_bytes(self.prepare(file), file.filename)

    def resolve_file_url(self, url: str) -> DistFile:
        return self.source.resolve_file_url(url)

    def prefetch_files(self, names: Iterable[NormalizedName]) -> None:
        self.source.prefetch_files(names)

    def prefetch_metadata(self, files: Iterable[DistFile]) -> None:
        self.source.prefetch_metadata(files)
