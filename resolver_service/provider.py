"""The resolvelib provider: every Python packaging rule the search needs, and nothing about I/O.

It answers resolvelib's five questions using a :class:`~venvsmith.core.source.PackageSource` for files
and metadata, :mod:`resolver_service.selection` for what files may be used, and ``packaging`` for every
version, specifier and marker decision.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, Literal

from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version
from resolvelib import AbstractProvider

from venvsmith.core.distfile import DistFile
from venvsmith.core.errors import InvalidDistribution
from venvsmith.core.metadata import CoreMetadata
from venvsmith.core.source import PackageSource
from venvsmith.core.target import TargetEnvironment

from .candidate import (
    PYTHON,
    AnyCandidate,
    AnyRequirement,
    BaseRequirement,
    Candidate,
    PythonCandidate,
    PythonRequirement,
    SpecRequirement,
    UnusableRequirement,
    UsableRequirement,
)
from .selection import Selection, SelectionPolicy, allowed_versions, lower_bound, pins_exactly, select

#: How many of the next candidates' metadata to fetch ahead of the search. The newest is almost always the
#: one pinned; an older one is needed only once the search starts rejecting versions of the project.
PREFETCH_DEPTH = 1
#: ... and how many once it has rejected some (backtracking on that project).
BACKTRACK_PREFETCH_DEPTH = 3
#: Upper bound on projects explored speculatively ahead of the search.
MAX_SPECULATED = 1000


class Provider(AbstractProvider):
    """Packaging rules for resolvelib, against one target environment and one package source."""

    def __init__(
        self,
        source: PackageSource,
        target: TargetEnvironment,
        policy: SelectionPolicy,
        constraints: Mapping[NormalizedName, Sequence[SpecifierSet]] = {},
        user_requested: Mapping[NormalizedName, int] | None = None,
        executor: Executor | None = None,
        url_constraints: Mapping[NormalizedName, DistFile] = {},
        user_specifiers: Mapping[NormalizedName, Sequence[SpecifierSet]] = {},
    ) -> None:
        self.source = source
        self.target = target
        self.policy = policy
        self.constraints = constraints
        #: Projects a URL constraint (``name @ url``) restricts to one file, wherever they are required.
        self.url_constraints = url_constraints
        #: The specifiers of the user's own (root) requirements by project, whatever their extras: they hold
        #: for every identifier of the project, and only they (or a constraint) may pin a yanked version.
        self.user_specifiers = user_specifiers
        #: Order of the user's requirements by project, looked up by (bare) identifier.
        self.user_requested: dict[str, int] = {name: i for name, i in (user_requested or {}).items()}
        #: Projects restricted to final releases: those whose pre-release an answer pinned without its final
        #: requirements asking for one (see ``resolve``), while a search checks whether a final release works.
        self.finals_only: set[NormalizedName] = set()
        self.python = PythonCandidate(target.python_version)
        self._selections: dict[NormalizedName, Selection] = {}
        self._metadata: dict[Candidate, CoreMetadata | InvalidDistribution] = {}
        self._lock = threading.Lock()
        self._executor = executor
        #: (project, extras) walked ahead of the search: an extra's dependencies are walked too.
        self._speculated: set[tuple[NormalizedName, frozenset[NormalizedName]]] = set()
        self._contains_memo: dict[SpecifierSet, dict[Version, bool] | None] = {}

    # -- data access -------------------------------------------------------------------------------

    def selection(self, name: NormalizedName) -> Selection:
        """Usable files of ``name`` for the target, computed once per resolution."""
        with self._lock:
            held = self._selections.get(name)
        if held is None:
            held = select(name, self.source.files(name), self.target, self.policy)
            with self._lock:
                self._selections[name] = held
        return held

    def metadata(self, candidate: Candidate) -> CoreMetadata:
        """Metadata of ``candidate``'s file; invalid metadata is remembered and re-raised."""
        held = self._metadata.get(candidate)
        if held is None:
            try:
                held = self.source.metadata(candidate.file)
                if held.name != candidate.name or held.version != candidate.version:
                    raise InvalidDistribution(
                        candidate.file.filename,
                        f"metadata names {held.name} {held.version}, the file name says "
                        f"{candidate.name} {candidate.version}",
                    )
            except InvalidDistribution as exc:
                held = exc
            self._metadata[candidate] = held
        if isinstance(held, InvalidDistribution):
            raise held
        return held

    # -- looking ahead -----------------------------------------------------------------------------

    def speculate(self, wanted: Iterable[tuple[NormalizedName, frozenset[NormalizedName]]]) -> None:
        """Walk the likely dependency closure of ``wanted`` (project, extras) pairs in the background (newest
        allowed versions).

        The search itself is sequential; this fills the source's per-resolution memo (pages and metadata)
        in parallel so that the search rarely waits on the network. The dependencies an extra asks for
        (``jsonschema[format-nongpl]``) are walked as well: otherwise their pages are first asked for only
        when the search reaches the extra, one round trip per level late. Without an executor it does nothing.
        """
        if self._executor is None:
            return
        todo = []
        with self._lock:
            for key in wanted:
                if key not in self._speculated and len(self._speculated) < MAX_SPECULATED:
                    self._speculated.add(key)
                    todo.append(key)
        for name, extras in todo:
            try:
                self._executor.submit(self._speculate_one, name, extras)
            except RuntimeError:  # the resolution is over
                return

    def _speculate_one(self, name: NormalizedName, extras: frozenset[NormalizedName]) -> None:
        try:
            file = self.url_constraints.get(name)
            if file is None:
                users = [*self.constraints.get(name, ()), *self.user_specifiers.get(name, ())]
                allowed = allowed_versions(self.selection(name), users, self.policy, self._user_pinned(name, []))
                if not allowed:
                    return
                file = allowed[0][1]
            meta = self.source.metadata(file)
        except Exception:  # noqa: BLE001 - speculation only warms caches; the search reports errors
            return
        self.speculate(
            (canonicalize_name(r.name), frozenset(canonicalize_name(e) for e in r.extras))
            for r in meta.requires_dist
            if r.marker is None or self._marker_holds(r.marker, extras)
        )

    def _marker_holds(self, marker, extras: frozenset[NormalizedName] = frozenset()) -> bool:
        """Whether ``marker`` holds for the bare project or for one of ``extras`` (errors: no)."""
        try:
            return self.target.evaluate(marker) or any(self.target.evaluate(marker, [e]) for e in sorted(extras))
        except Exception:  # noqa: BLE001
            return False

    # -- resolvelib's questions --------------------------------------------------------------------

    def identify(self, requirement_or_candidate: AnyRequirement | AnyCandidate) -> str:
        return requirement_or_candidate.id

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, AnyCandidate],
        candidates: Mapping[str, Iterator[AnyCandidate]],
        information: Mapping[str, Iterator[Any]],
        backtrack_causes: Sequence[Any],
    ) -> tuple:
        """Lower sorts first: Python, then exact pins, then conflict causes, then user order, then name."""
        pinned = any(getattr(info.requirement, "exact", False) for info in information[identifier])
        bare = identifier.split("[", 1)[0]
        cause = True
        if backtrack_causes:
            causes = {c.requirement.id for c in backtrack_causes} | {
                c.parent.id for c in backtrack_causes if c.parent is not None
            }
            cause = identifier not in causes and bare not in causes
        return (
            identifier != PYTHON,
            not pinned,
            cause,
            self.user_requested.get(bare, 1 << 30),
            identifier,
        )

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[AnyRequirement]],
        incompatibilities: Mapping[str, Iterator[AnyCandidate]],
    ) -> Sequence[AnyCandidate]:
        given = list(requirements[identifier])
        reqs = [r for r in given if not isinstance(r, UnusableRequirement)]
        if identifier == PYTHON:
            ok = all(r.specifier.contains(self.python.version, prereleases=True) for r in reqs)
            return [self.python] if ok else []
        if len(reqs) < len(given):  # an unusable requirement: nothing satisfies it
            return []
        name = NormalizedName(reqs[0].name if reqs else identifier.split("[", 1)[0])
        extras = next((r.extras for r in reqs if isinstance(r, SpecRequirement)), frozenset())
        bad = {c.version for c in incompatibilities[identifier]}
        direct = {r.direct for r in reqs if isinstance(r, SpecRequirement) and r.direct is not None}
        if name in self.url_constraints:
            direct.add(self.url_constraints[name])
        if direct:
            if len(direct) > 1:
                return []
            file = direct.pop()
            cand = Candidate(name, file.version, file, extras)
            limits = self.constraints.get(name, ())
            if cand.version in bad or not all(self._contains(s, cand.version) for s in limits):
                return []
            return [cand] if all(self._accepts(r, cand) for r in reqs) else []
        finals_only = name in self.finals_only
        matches = [
            Candidate(name, version, file, extras)
            for version, file in self.allowed(name, reqs)
            if version not in bad and not (finals_only and version.is_prerelease)
        ]
        depth = BACKTRACK_PREFETCH_DEPTH if bad else PREFETCH_DEPTH
        self.source.prefetch_metadata(c.file for c in matches[:depth])
        return matches

    def allowed(
        self, name: NormalizedName, reqs: Sequence[UsableRequirement], *, bases: bool = True
    ) -> list[tuple[Version, DistFile]]:
        """The (version, file) pairs of ``name`` the selection rules allow under ``reqs`` (with the constraints
        and the user's own specifiers), newest first, before incompatibilities and :attr:`finals_only`.

        ``bases=False``: an extras candidate's :class:`BaseRequirement` (``==`` its own version) counts for
        yanked files only, not as a specifier (it would name the very pre-release being asked about).
        """
        specifiers = [
            *(r.specifier for r in reqs if bases or not isinstance(r, BaseRequirement)),
            *self.constraints.get(name, ()),
            *self.user_specifiers.get(name, ()),
        ]
        return allowed_versions(self.selection(name), specifiers, self.policy, self._user_pinned(name, reqs))

    def _user_pinned(self, name: NormalizedName, reqs: Sequence[AnyRequirement]) -> bool:
        """Whether the user's own requirement or constraint pins the project (``==``/``===``), which alone
        lets a yanked file be chosen (PEP 592); a dependency's pin never does. An extras candidate's base
        requirement pins the version already accepted for the extras identifier, so it counts too."""
        users = [*self.constraints.get(name, ()), *self.user_specifiers.get(name, ())]
        return any(pins_exactly(s) for s in users) or any(isinstance(r, BaseRequirement) for r in reqs)

    def _accepts(self, requirement: UsableRequirement, candidate: Candidate) -> bool:
        if isinstance(requirement, SpecRequirement) and requirement.direct is not None:
            return requirement.direct == candidate.file
        pinned = self.url_constraints.get(candidate.name)
        if pinned is not None and pinned != candidate.file:
            return False
        return self._contains(requirement.specifier, candidate.version)

    def _contains(self, specifier: SpecifierSet, version: Version) -> bool:
        """``specifier.contains(version, prereleases=True)``, remembered: resolvelib re-checks every pin
        against every requirement on each round, always the same few (specifier, version) pairs.

        Not remembered for a specifier with an ``===`` clause: it compares version *strings*, so two equal
        versions spelled differently (``1.0`` / ``1.0.0``) may differ there.
        """
        memo: dict[Version, bool] | None | Literal[False] = self._contains_memo.get(specifier, False)
        if memo is False:
            memo = None if any(s.operator == "===" for s in specifier) else {}
            self._contains_memo[specifier] = memo
        if memo is None:
            return specifier.contains(version, prereleases=True)
        held = memo.get(version)
        if held is None:
            held = memo[version] = specifier.contains(version, prereleases=True)
        return held

    def is_satisfied_by(self, requirement: AnyRequirement, candidate: AnyCandidate) -> bool:
        # resolvelib re-checks every pin against every requirement on each round (O(rounds x requirements)
        # calls): answer from the requirement's memo, keyed by the candidate object (kept alive in the value,
        # so its id cannot be reused while the entry exists).
        if isinstance(requirement, UnusableRequirement):
            return False
        memo = requirement.satisfied
        held = memo.get(id(candidate))
        if held is not None and held[0] is candidate:
            return held[1]
        if isinstance(requirement, PythonRequirement) or isinstance(candidate, PythonCandidate):
            answer = self._contains(requirement.specifier, candidate.version)
        else:
            answer = self._accepts(requirement, candidate)
        memo[id(candidate)] = (candidate, answer)
        return answer

    def get_dependencies(self, candidate: AnyCandidate) -> Iterable[AnyRequirement]:
        if isinstance(candidate, PythonCandidate):
            return []
        try:
            meta = self.metadata(candidate)
        except InvalidDistribution as exc:
            return [UnusableRequirement(candidate.name, exc.message)]
        deps: list[AnyRequirement] = []
        if candidate.extras:
            deps.append(BaseRequirement(candidate.name, candidate.version))
        requires_python = meta.requires_python
        if requires_python is not None and self.policy.ignore_requires_python_upper_bound:
            requires_python = lower_bound(requires_python)
        if requires_python:
            deps.append(PythonRequirement(requires_python))
        extras = sorted(candidate.extras)
        for req in meta.requires_dist:
            if req.marker is None:
                if not candidate.extras:
                    deps.append(SpecRequirement.from_requirement(req))
                continue
            if candidate.extras:
                wanted = any(self.target.evaluate(req.marker, [e]) for e in extras)
                # Dependencies of the bare project come from the BaseRequirement already.
                wanted = wanted and not self.target.evaluate(req.marker)
            else:
                wanted = self.target.evaluate(req.marker)
            if wanted:
                deps.append(SpecRequirement.from_requirement(req))
        walk = {(d.name, d.extras) for d in deps if isinstance(d, SpecRequirement)}
        self.source.prefetch_files({name for name, _ in walk})
        self.speculate(walk)
        return deps
