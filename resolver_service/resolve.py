"""The whole resolution algorithm: parse the request, run resolvelib with our provider, shape the pins.

Pure: all I/O goes through the :class:`~venvsmith.core.source.PackageSource` it is handed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from resolvelib import BaseReporter, ResolutionImpossible, ResolutionTooDeep, Resolver

from venvsmith.core.distfile import DistFile
from venvsmith.core.errors import DeadlineExceeded, InvalidInput, ServiceError
from venvsmith.core.pin import Pin
from venvsmith.core.source import PackageSource
from venvsmith.core.target import TargetEnvironment

from .candidate import PYTHON, Candidate, SpecRequirement
from .direct import direct_file, url_constraints
from .errors import TooManyBacktracks
from .explain import explain_impossible
from .provider import Provider
from .selection import SelectionPolicy, release_sdist

DEFAULT_MAX_BACKTRACKS = 100_000

#: Progress callback: (kind, name, version, detail); kinds are "pinned" and "backtracked".
OnEvent = Callable[[str, str, str, str], None]


def parse_requirement(text: str, *, what: str = "requirement") -> Requirement:
    """Parse one PEP 508 string; raise :class:`InvalidInput` naming it when malformed."""
    text = text.strip()
    if not text:
        raise InvalidInput(text, f"empty {what}")
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise InvalidInput(text, f"invalid {what} ({exc})") from None
    if req.url and not req.url.startswith(("http://", "https://", "file://")):
        raise InvalidInput(text, f"unsupported URL in {what} (http, https and file URLs are)")
    return req


def parse_constraint(text: str) -> Requirement:
    """A constraint is a requirement without extras; it limits versions but adds nothing."""
    req = parse_requirement(text, what="constraint")
    if req.extras:
        raise InvalidInput(text, "constraints cannot have extras")
    return req


@dataclass(frozen=True)
class ResolutionRequest:
    """A validated request for the pure core."""

    requirements: tuple[Requirement, ...]
    target: TargetEnvironment
    constraints: tuple[Requirement, ...] = ()
    policy: SelectionPolicy = field(default_factory=SelectionPolicy)
    max_backtracks: int = DEFAULT_MAX_BACKTRACKS
    #: ``time.monotonic()`` value after which the resolution gives up.
    deadline: float | None = None
    #: Threads that explore the likely dependency closure ahead of the search; 0 = none (pure, sequential).
    lookahead_workers: int = 0


@dataclass(frozen=True)
class Resolution:
    """The answer of the core: pins in install order."""

    pins: tuple[Pin, ...]
    backtracks: int


class _Reporter(BaseReporter):
    """Counts backtracks, enforces limits and forwards progress; never prints."""

    def __init__(self, max_backtracks: int, deadline: float | None, on_event: OnEvent | None) -> None:
        self.max_backtracks = max_backtracks
        self.deadline = deadline
        self.on_event = on_event
        self.backtracks = 0
        #: identifier -> (requirement, parent) pairs seen, newest last: explains conflicts.
        self.required: dict[str, list[tuple[object, object]]] = defaultdict(list)

    def adding_requirement(self, requirement, parent) -> None:
        self.required[requirement.id].append((requirement, parent))

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlineExceeded("the deadline passed before a resolution was found")

    def starting_round(self, index: int) -> None:
        self._check_deadline()

    def rejecting_candidate(self, criterion, candidate) -> None:
        self.backtracks += 1
        if self.backtracks > self.max_backtracks:
            raise TooManyBacktracks(
                f"gave up after {self.max_backtracks} backtracks (last rejected: {candidate}); "
                "add constraints to narrow the search or raise max_backtracks"
            )
        if self.on_event is not None:
            self.on_event("backtracked", candidate.name, str(candidate.version), "")

    def pinning(self, candidate) -> None:
        if self.on_event is not None and isinstance(candidate, Candidate):
            self.on_event("pinned", candidate.name, str(candidate.version), candidate.file.filename)


def root_requirements(
    request: ResolutionRequest, source: PackageSource
) -> tuple[list[SpecRequirement], dict[NormalizedName, list[SpecifierSet]]]:
    """Root requirements whose markers hold for the target, and the constraints by name."""
    roots: list[SpecRequirement] = []
    for req in request.requirements:
        if req.marker is not None and not _evaluate(request.target, req):
            continue
        direct = direct_file(req, source, request.target) if req.url else None
        roots.append(SpecRequirement.from_requirement(req, direct))
    constraints: dict[NormalizedName, list[SpecifierSet]] = defaultdict(list)
    for con in request.constraints:
        if con.marker is None or _evaluate(request.target, con):
            constraints[canonicalize_name(con.name)].append(con.specifier)
    return roots, dict(constraints)


def _evaluate(target: TargetEnvironment, req: Requirement) -> bool:
    try:
        return target.evaluate(req.marker)
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName) as exc:
        raise InvalidInput(str(req), f"marker cannot be evaluated ({exc})") from None


def resolve(request: ResolutionRequest, source: PackageSource, on_event: OnEvent | None = None) -> Resolution:
    """Resolve ``request`` against ``source``; raise a :class:`ServiceError` subclass when impossible."""
    roots, constraints = root_requirements(request, source)
    active = [c for c in request.constraints if c.url and (c.marker is None or _evaluate(request.target, c))]
    pinned_files = url_constraints(active, roots, source, request.target)
    order = {r.name: i for i, r in enumerate(roots)}
    executor = None
    if request.lookahead_workers > 0:
        executor = ThreadPoolExecutor(request.lookahead_workers, thread_name_prefix="lookahead")
    user_specifiers: dict[NormalizedName, list[SpecifierSet]] = defaultdict(list)
    for root in roots:
        user_specifiers[root.name].append(root.specifier)
    provider = Provider(
        source, request.target, request.policy, constraints, order, executor, pinned_files, user_specifiers
    )
    source.prefetch_files(order)
    provider.speculate(order)
    reporter = _Reporter(request.max_backtracks, request.deadline, on_event)
    resolver = Resolver(provider, reporter)
    try:
        result = resolver.resolve(roots, max_rounds=request.max_backtracks + 10 * len(roots) + 1000)
    except ResolutionImpossible as exc:
        raise explain_impossible(exc.causes, provider, reporter.required) from None
    except ResolutionTooDeep:
        raise TooManyBacktracks(
            f"gave up after {reporter.backtracks} backtracks; add constraints to narrow the search"
        ) from None
    finally:
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
    pins = [_completed(pin, cand, source, provider, request) for pin, cand in _pins(result, roots)]
    return Resolution(tuple(pins), reporter.backtracks)


def _completed(
    pin: Pin, cand: Candidate, source: PackageSource, provider: Provider, request: ResolutionRequest
) -> Pin:
    """What a lock file needs of a pin: a sha256, size and Requires-Python of its file, its release's sdist."""
    file = _with_hash(pin.file, source)
    if file.requires_python is None:
        # Listings without Requires-Python (find-links directories, bare pages): the metadata's, read (and
        # memoised) while resolving; left empty when the metadata has none.
        requires_python = provider.metadata(cand).requires_python
        if requires_python is not None:
            file = replace(file, requires_python=str(requires_python))
    sdist = None
    if file.origin != "direct":  # a URL requirement names one file: no listing is asked for its name
        sdist = release_sdist(file, source.files(pin.name), request.target, request.policy)
    if sdist is not None and not sdist.sha256:
        # Hashing means reading the file: done for local files only (a lock's sdist must have a hash). The
        # sdist is informational: one that cannot be read is left out rather than failing the resolution.
        try:
            sdist = _with_hash(sdist, source) if sdist.is_local else None
        except ServiceError:
            sdist = None
    return replace(pin, file=file, sdist=sdist)


def _with_hash(file: DistFile, source: PackageSource) -> DistFile:
    """Every pinned file carries a sha256: files listed without one (find-links) are hashed now."""
    if file.sha256:
        return file
    hashed = source.resolve_file_url(file.url)
    return replace(file, hashes={**file.hashes, "sha256": hashed.sha256}, size=hashed.size)


def _pins(result, roots: Sequence[SpecRequirement]) -> list[tuple[Pin, Candidate]]:
    """Turn resolvelib's result into pins in install order, each with its requirement chains (and the
    candidate it was pinned from)."""
    bases: dict[str, Candidate] = {}
    extras: dict[str, set[str]] = defaultdict(set)
    for ident, cand in result.mapping.items():
        if ident == PYTHON:
            continue
        bases.setdefault(cand.name, cand)
        extras[cand.name].update(cand.extras)
        if not cand.extras:
            bases[cand.name] = cand
    deps: dict[str, set[str]] = {name: set() for name in bases}
    for ident, cand in result.mapping.items():
        if ident == PYTHON:
            continue
        for child in result.graph.iter_children(ident):
            child_cand = result.mapping.get(child)
            if child != PYTHON and child_cand is not None and child_cand.name != cand.name:
                deps[cand.name].add(child_cand.name)
    chains = _chains(result, bases)
    return [
        (
            Pin(
                name=cand.name,
                version=cand.version,
                file=cand.file,
                extras=tuple(sorted(extras[name])),
                required_by=tuple(chains.get(name, ())),
                dependencies=tuple(sorted(deps[name])),
            ),
            cand,
        )
        for name, cand in ((n, bases[n]) for n in install_order(deps))
    ]


def _chains(result, bases: dict[str, Candidate]) -> dict[str, list[str]]:
    """For each pinned name, one shortest chain per direct reason, from a root requirement."""
    reasons: dict[str, list[tuple[Candidate | None, str]]] = defaultdict(list)
    for ident, criterion in result.criteria.items():
        if ident == PYTHON or ident not in result.mapping:
            continue
        name = result.mapping[ident].name
        for info in criterion.information:
            reasons[name].append((info.parent, str(info.requirement)))
    shortest: dict[str, str] = {}

    def chain_to(name: str, seen: frozenset[str]) -> str:
        if name in shortest:
            return shortest[name]
        roots = sorted((text for parent, text in reasons.get(name, ()) if parent is None), key=len)
        best = roots[0] if roots else None
        for parent, text in reasons.get(name, ()):
            if best is not None and best in roots:
                break
            if parent is not None and parent.name not in seen and parent.name != name:
                path = f"{chain_to(parent.name, seen | {name})} -> {parent} -> {text}"
                if best is None or path.count(" -> ") < best.count(" -> "):
                    best = path
        shortest[name] = best or name
        return shortest[name]

    out: dict[str, list[str]] = {}
    for name in bases:
        lines = []
        for parent, text in reasons.get(name, ()):
            if parent is None:
                lines.append(text)
            elif parent.name != name:
                lines.append(f"{chain_to(parent.name, frozenset({name}))} -> {parent} -> {text}")
        out[name] = sorted(set(lines), key=lambda s: (s.count(" -> "), s))
    return out


def install_order(deps: dict[str, set[str]]) -> Iterable[str]:
    """Dependencies before dependants (Kahn's algorithm, ties by name; cycles broken at the smallest name)."""
    remaining = {n: set(d) & deps.keys() for n, d in deps.items()}
    done: list[str] = []
    while remaining:
        ready = sorted(n for n, d in remaining.items() if not d)
        if not ready:
            ready = [min(remaining)]
        for n in ready:
            done.append(n)
            del remaining[n]
        for d in remaining.values():
            d.difference_update(ready)
    return done
