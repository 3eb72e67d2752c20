"""Direct URL files: a requirement or a constraint that names one file (``name @ url``), as pip reads them.

A direct URL requirement makes that file the only candidate of its project; so does a URL constraint
(without adding a requirement), wherever the project is required, directly or by a dependency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from venvsmith.core.distfile import DistFile
from venvsmith.core.errors import InvalidInput
from venvsmith.core.source import PackageSource
from venvsmith.core.target import TargetEnvironment

from .candidate import SpecRequirement


def direct_file(req: Requirement, source: PackageSource, target: TargetEnvironment) -> DistFile:
    """The file ``req``'s URL names, checked: it is of ``req``'s project, and a wheel fits the target.

    Raises :class:`InvalidInput` naming the requirement (or the URL) otherwise.
    """
    assert req.url is not None
    file = source.resolve_file_url(req.url)
    if file.name != canonicalize_name(req.name):
        raise InvalidInput(str(req), f"the URL's file is {file.name}, not {req.name}")
    if file.is_wheel and target.best_tag_rank(file.tags) is None:
        raise InvalidInput(
            req.url,
            f"the wheel {file.filename} does not fit the target environment "
            f"(Python {target.python_version}, {target.markers.get('sys_platform', '?')}): none of its tags "
            f"{', '.join(sorted(str(t) for t in file.tags))} is supported",
        )
    return file


def same_file(a: DistFile, b: DistFile) -> bool:
    """Two direct references name the same file: same location and, when both are known, same content."""
    return a.url == b.url and (not a.sha256 or not b.sha256 or a.sha256 == b.sha256)


def url_constraints(
    constraints: Iterable[Requirement],
    roots: Sequence[SpecRequirement],
    source: PackageSource,
    target: TargetEnvironment,
) -> dict[NormalizedName, DistFile]:
    """The file each URL constraint (markers already true for the target) restricts its project to.

    Two different URLs for one project -- two constraints, or a constraint and a direct URL requirement --
    are :class:`InvalidInput` naming both.
    """
    files: dict[NormalizedName, DistFile] = {}
    texts: dict[NormalizedName, str] = {}
    for con in constraints:
        if not con.url:
            continue
        name = canonicalize_name(con.name)
        file = direct_file(con, source, target)
        held = files.get(name)
        if held is not None and not same_file(held, file):
            raise InvalidInput(str(con), f"contradicts the constraint {texts[name]} (two URLs for {name})")
        files[name] = file
        texts[name] = str(con)
    _check_against_requirements(files, texts, roots)
    return files


def _check_against_requirements(
    files: Mapping[NormalizedName, DistFile], texts: Mapping[NormalizedName, str], roots: Sequence[SpecRequirement]
) -> None:
    for root in roots:
        held = files.get(root.name)
        if held is not None and root.direct is not None and not same_file(held, root.direct):
            raise InvalidInput(root.text, f"contradicts the constraint {texts[root.name]} (two URLs for {root.name})")
