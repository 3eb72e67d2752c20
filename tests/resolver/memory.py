"""An in-memory package source: the pure resolver core is tested against it, with no I/O."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from packaging.utils import NormalizedName, canonicalize_name

from venvsmith.core.distfile import DistFile
from venvsmith.core.errors import DynamicMetadata
from venvsmith.core.metadata import CoreMetadata

INDEX = "memory://index/"


def render_metadata(
    name: str,
    version: str,
    requires: Sequence[str] = (),
    extras: Mapping[str, Sequence[str]] | None = None,
    requires_python: str | None = None,
    metadata_version: str = "2.1",
    dynamic: Sequence[str] = (),
) -> bytes:
    lines = [f"Metadata-Version: {metadata_version}", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Dynamic: {d}" for d in dynamic]
    lines += [f"Requires-Dist: {r}" for r in requires]
    for extra, reqs in (extras or {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for r in reqs:
            if ";" in r:
                req, marker = r.split(";", 1)
                lines.append(f'Requires-Dist: {req.strip()} ; ({marker.strip()}) and extra == "{extra}"')
            else:
                lines.append(f'Requires-Dist: {r} ; extra == "{extra}"')
    return ("\n".join(lines) + "\n").encode()


class MemorySource:
    """A dict-backed :class:`~venvsmith.core.source.PackageSource` with call counting."""

    def __init__(self) -> None:
        self._files: dict[NormalizedName, list[DistFile]] = defaultdict(list)
        self._unlisted: dict[NormalizedName, list[DistFile]] = defaultdict(list)
        self._meta: dict[DistFile, bytes] = {}
        self.calls: list[tuple[str, str]] = []

    def add(
        self,
        name: str,
        version: str,
        requires: Sequence[str] = (),
        *,
        extras: Mapping[str, Sequence[str]] | None = None,
        requires_python: str | None = None,
        file_requires_python: str | None = None,
        tag: str = "py3-none-any",
        sdist: bool = False,
        yanked: str | None = None,
        upload_time: datetime | None = None,
        dynamic: Sequence[str] = (),
        metadata_version: str = "2.1",
        metadata_name: str | None = None,
        index: str = INDEX,
        listed: bool = True,
    ) -> DistFile:
        """Publish one file of ``name`` ``version`` with the given metadata.

        ``listed=False``: the file is only reachable by its URL (a direct reference), not in ``files()``.
        """
        stem = canonicalize_name(name).replace("-", "_")
        filename = f"{stem}-{version}.tar.gz" if sdist else f"{stem}-{version}-{tag}.whl"
        meta = render_metadata(
            metadata_name or name, version, requires, extras, requires_python, metadata_version, dynamic
        )
        sha = hashlib.sha256(filename.encode() + meta).hexdigest()
        file = DistFile.from_listing(
            filename,
            f"{index}files/{filename}",
            index,
            hashes={"sha256": sha},
            requires_python=file_requires_python,
            yanked=yanked,
            upload_time=upload_time,
        )
        assert file is not None, filename
        (self._files if listed else self._unlisted)[file.name].append(file)
        self._meta[file] = meta
        return file

    # -- PackageSource ------------------------------------------------------------------------------

    def files(self, name: NormalizedName) -> Sequence[DistFile]:
        self.calls.append(("files", name))
        return list(self._files.get(name, ()))

    def metadata(self, file: DistFile) -> CoreMetadata:
        self.calls.append(("metadata", file.filename))
        meta = CoreMetadata.from_bytes(self._meta[file], file.filename)
        if not file.is_wheel and not meta.dependencies_are_static:
            raise DynamicMetadata(file.filename, f"{file.filename} has dynamic dependencies")
        return meta

    def prefetch_files(self, names: Iterable[NormalizedName]) -> None:
        pass

    def prefetch_metadata(self, files: Iterable[DistFile]) -> None:
        pass

    def resolve_file_url(self, url: str) -> DistFile:
        for files in [*self._files.values(), *self._unlisted.values()]:
            for file in files:
                if file.url == url:
                    return file
        raise KeyError(url)
