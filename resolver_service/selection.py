"""Which files of a project may be used for a target environment, and which one is best per version.

Pure: given a project's listed files, the target environment and the selection policy, return one
candidate file per usable version (newest first) and a tally of why the other files were set aside, so a
"no solution" explanation can say it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import lru_cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName
from packaging.version import Version

from venvsmith.core.distfile import DistFile
from venvsmith.core.target import TargetEnvironment

ALL = ":all:"


class Prereleases(Enum):
    """When pre-releases may be chosen (see ``PrereleasePolicy`` in common.proto)."""

    IF_NECESSARY_OR_EXPLICIT = "if-necessary-or-explicit"
    ALLOW = "allow"
    DISALLOW = "disallow"

    @property
    def flag(self) -> bool | None:
        """The ``prereleases`` argument for ``SpecifierSet.filter``: ``None`` lets packaging decide."""
        return {Prereleases.ALLOW: True, Prereleases.DISALLOW: False}.get(self)


@dataclass(frozen=True)
class BinaryPolicy:
    """pip's ``--no-binary`` / ``--only-binary`` sets: canonical names or ``:all:``."""

    no_binary: frozenset[str] = frozenset()
    only_binary: frozenset[str] = frozenset()

    def allows_wheel(self, name: NormalizedName) -> bool:
        if name in self.only_binary:
            return True
        return not (name in self.no_binary or ALL in self.no_binary)

    def allows_sdist(self, name: NormalizedName) -> bool:
        if name in self.no_binary:
            return True
        return not (name in self.only_binary or ALL in self.only_binary)


@dataclass(frozen=True)
class SelectionPolicy:
    """Everything besides the target environment that decides whether a file may be used."""

    prereleases: Prereleases = Prereleases.IF_NECESSARY_OR_EXPLICIT
    binary: BinaryPolicy = field(default_factory=BinaryPolicy)
    #: Files uploaded after this instant are ignored (PEP 700 upload-time; for a listing without one, the time
    #: this resolver first saw the file, :attr:`DistFile.first_seen`).
    exclude_newer: datetime | None = None
    #: PEP 592: yanked files only for the user's own exact ``==``/``===`` pins (True) or never (False).
    allow_yanked_pins: bool = True
    #: Read each Requires-Python by its lower bounds only (uv's choice: ``>=3.8,<=3.10`` allows 3.12). By
    #: default upper bounds are honoured, as pip does: the package says it does not support the target.
    ignore_requires_python_upper_bound: bool = False


@dataclass
class Selection:
    """The usable files of one project: best file per version, newest version first."""

    name: NormalizedName
    #: (version, best file) newest first; yanked files are kept here and filtered per requirement.
    by_version: list[tuple[Version, DistFile]]
    #: Why files were set aside: reason -> number of files.
    rejected: Counter[str]
    #: Every version any listed file had, whatever happened to it (for explanations).
    all_versions: frozenset[Version]
    #: The indexes / find-links locations the listed files came from (for explanations).
    sources: frozenset[str] = frozenset()

    def versions(self) -> list[Version]:
        return [v for v, _ in self.by_version]


def _file_rank(file: DistFile, target: TargetEnvironment) -> tuple:
    """Sort key: lower is better. Wheels beat sdists; among wheels the best-ranked tag wins, then build tag."""
    if file.is_wheel:
        return _wheel_rank(file, target.best_tag_rank(file.tags))
    return _sdist_rank(file)


def _wheel_rank(file: DistFile, rank: int | None) -> tuple:
    build = -file.build_tag[0] if file.build_tag else 0
    return (0, rank, build, file.filename)


def _sdist_rank(file: DistFile) -> tuple:
    return (1, 0, 0 if file.filename.endswith(".tar.gz") else 1, file.filename)


def lower_bound(specifier: SpecifierSet) -> SpecifierSet:
    """The lower bounds of a Requires-Python, the rest dropped (uv's reading of it).

    ``>=3.8,<4`` -> ``>=3.8``; ``==3.8.*`` and ``~=3.8`` -> ``>=3.8``; ``<=3.8``, ``!=`` and ``===`` clauses go.
    """
    kept = []
    for clause in specifier:
        if clause.operator in (">", ">="):
            kept.append(str(clause))
        elif clause.operator in ("~=", "=="):
            kept.append(f">={Version(clause.version.removesuffix('.*')).public}")
    return SpecifierSet(",".join(kept))


@lru_cache(maxsize=1 << 12)
def _python_allows(
    requires_python: str, python_version: Version, spelling: str, upper_bounds: bool = True
) -> bool | None:
    """Whether ``python_version`` satisfies ``requires_python``; ``None`` when that does not parse.

    Memoised: a page repeats a handful of Requires-Python strings over all its files. ``spelling`` (the
    version as written) is part of the key because ``===`` compares strings. ``upper_bounds=False``: only
    the :func:`lower_bound` counts.
    """
    try:
        spec = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return None
    if not upper_bounds:
        spec = lower_bound(spec)
    return spec.contains(python_version, prereleases=True)


def python_verdict(
    requires_python: str, python_version: Version, spelling: str | None = None, upper_bounds: bool = True
) -> str | None:
    """Why a file with this ``requires_python`` cannot be used on ``python_version``, or ``None``."""
    allowed = _python_allows(requires_python, python_version, spelling or str(python_version), upper_bounds)
    if allowed is None:
        return "invalid requires-python in the index listing"
    if not allowed:
        return f"requires Python {requires_python} (target is {python_version})"
    return None


def _late_rejection(file: DistFile, target: TargetEnvironment, policy: SelectionPolicy) -> str | None:
    """The checks of :func:`_rejection` after the file-kind ones."""
    if file.requires_python:
        python, spelling = target.python_version, target.markers["python_full_version"]
        upper = not policy.ignore_requires_python_upper_bound
        if not _python_allows(file.requires_python, python, spelling, upper):
            return python_verdict(file.requires_python, python, spelling, upper)
    if policy.exclude_newer is not None:
        if file.upload_time is not None:
            if file.upload_time > policy.exclude_newer:
                return "uploaded after exclude-newer"
        elif file.first_seen is not None:  # no upload time listed: when this resolver first saw it (a cooldown)
            if file.first_seen > policy.exclude_newer:
                seen = file.first_seen.isoformat()
                return f"no upload time; first seen by this resolver at {seen} (after exclude-newer)"
        elif file.origin != "find-links":
            return "no upload time (exclude-newer is set)"
    if file.yanked is not None and not policy.allow_yanked_pins:
        return "yanked"
    return None


def _rejection(file: DistFile, target: TargetEnvironment, policy: SelectionPolicy) -> str | None:
    """Why ``file`` cannot be used at all for this target (independent of requirements), or ``None``."""
    if file.is_wheel:
        if not policy.binary.allows_wheel(file.name):
            return "wheels excluded by no-binary"
        if target.best_tag_rank(file.tags) is None:
            return "wheel tags not supported by the target environment"
    elif not policy.binary.allows_sdist(file.name):
        return "sdists excluded by only-binary"
    return _late_rejection(file, target, policy)


def select(
    name: NormalizedName,
    files: Iterable[DistFile],
    target: TargetEnvironment,
    policy: SelectionPolicy,
) -> Selection:
    """Filter ``files`` of ``name`` for ``target`` and pick the best file of each version."""
    rejected: Counter[str] = Counter()
    best: dict[Version, tuple[tuple, DistFile]] = {}
    all_versions: set[Version] = set()
    sources: set[str] = set()
    # Same checks as _rejection / _file_rank, with what depends only on the name computed once.
    wheels_ok = policy.binary.allows_wheel(name)
    sdists_ok = policy.binary.allows_sdist(name)
    best_tag_rank = target.best_tag_rank
    for file in files:
        if file.name != name:
            continue
        version = file.version
        all_versions.add(version)
        sources.add(file.index)
        if file.is_wheel:
            if not wheels_ok:
                rejected["wheels excluded by no-binary"] += 1
                continue
            rank = best_tag_rank(file.tags)
            if rank is None:
                rejected["wheel tags not supported by the target environment"] += 1
                continue
            reason = _late_rejection(file, target, policy)
            if reason is not None:
                rejected[reason] += 1
                continue
            key = (file.yanked is not None, *_wheel_rank(file, rank))
        else:
            if not sdists_ok:
                rejected["sdists excluded by only-binary"] += 1
                continue
            reason = _late_rejection(file, target, policy)
            if reason is not None:
                rejected[reason] += 1
                continue
            key = (file.yanked is not None, *_sdist_rank(file))
        # A yanked file only stands in for its version when no un-yanked file of it is usable.
        held = best.get(version)
        if held is None or key < held[0]:
            best[version] = (key, file)
    by_version = sorted(((v, f) for v, (_, f) in best.items()), key=lambda vf: vf[0], reverse=True)
    return Selection(name, by_version, rejected, frozenset(all_versions), frozenset(sources))


def release_sdist(
    chosen: DistFile, files: Iterable[DistFile], target: TargetEnvironment, policy: SelectionPolicy
) -> DistFile | None:
    """The sdist of ``chosen``'s release that this target and policy could use (yanked only when ``chosen``
    is), the best one when several are listed; ``None`` when ``chosen`` is itself an sdist or there is none."""
    if not chosen.is_wheel:
        return None
    usable = [
        f
        for f in files
        if not f.is_wheel
        and f.name == chosen.name
        and f.version == chosen.version
        and (f.yanked is None or chosen.yanked is not None)
        and _rejection(f, target, policy) is None
    ]
    return min(usable, key=_sdist_rank, default=None)


def pins_exactly(specifier: SpecifierSet) -> bool:
    """True when ``specifier`` has an ``==`` (no wildcard) or ``===`` clause: an explicit pin (PEP 592)."""
    return any(s.operator == "===" or (s.operator == "==" and not s.version.endswith(".*")) for s in specifier)


def allowed_versions(
    selection: Selection,
    specifiers: Sequence[SpecifierSet],
    policy: SelectionPolicy,
    user_pinned: bool = False,
) -> list[tuple[Version, DistFile]]:
    """The (version, file) pairs of ``selection`` that satisfy every specifier, newest first.

    Pre-releases follow packaging's rules for the combined specifier (chosen when a clause names one, or when
    no final release matches) unless the policy forces them on or off. PEP 592: yanked files are left out,
    unless ``user_pinned`` (the user's own requirement or constraint pins the project with ``==``/``===``)
    and no unyanked file satisfies the specifiers.
    """
    combined = SpecifierSet()
    for spec in specifiers:
        combined &= spec
    flag = policy.prereleases.flag
    unyanked = [(v, f) for v, f in selection.by_version if not f.is_yanked]
    ok = set(combined.filter((v for v, _ in unyanked), prereleases=flag))
    if ok or not user_pinned:
        return [(v, f) for v, f in unyanked if v in ok]
    ok = set(combined.filter((v for v, _ in selection.by_version), prereleases=flag))
    return [(v, f) for v, f in selection.by_version if v in ok]


def yanked_matches(selection: Selection, specifiers: Sequence[SpecifierSet]) -> list[tuple[Version, DistFile]]:
    """The yanked files of ``selection`` that satisfy every specifier (for explanations)."""
    return [
        (v, f)
        for v, f in selection.by_version
        if f.is_yanked and all(s.contains(v, prereleases=True) for s in specifiers)
    ]
