"""A package source that asks a builder for the metadata of sdists whose dependencies are dynamic.

Resolution itself never runs package code: only the builder does, in isolation (PrepareMetadata).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from packaging.utils import NormalizedName

from venvsmith.core.distfile import DistFile
from venvsmith.core.errors import DynamicMetadata
from venvsmith.core.metadata import CoreMetadata
from venvsmith.core.source import PackageSource

#: ``prepare(file) -> METADATA bytes``, built by the builder for the resolution's target environment.
Prepare = Callable[[DistFile], bytes]


class PreparingSource:
    """Delegates to ``source``; on :class:`DynamicMetadata` asks ``prepare`` instead of failing."""

    def __init__(self, source: PackageSource, prepare: Prepare) -> None:
        self.source = source
        self.prepare = prepare

    def files(self, name: NormalizedName) -> Sequence[DistFile]:
        return self.source.files(name)

    def metadata(self, file: DistFile) -> CoreMetadata:
        try:
            return self.source.metadata(file)
        except DynamicMetadata:
            if not file.sha256:  # the builder stores what it builds by content: hash the file first
                file = self.source.resolve_file_url(file.url)
            return CoreMetadata.from_bytes(self.prepare(file), file.filename)

    def resolve_file_url(self, url: str) -> DistFile:
        return self.source.resolve_file_url(url)

    def prefetch_files(self, names: Iterable[NormalizedName]) -> None:
        self.source.prefetch_files(names)

    def prefetch_metadata(self, files: Iterable[DistFile]) -> None:
        self.source.prefetch_metadata(files)
