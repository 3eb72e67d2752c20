"""The whole resolution algorithm: parse the request, run resolvelib with our provider, shape the pins.

Before the search, :mod:`resolver_service.conflicts` looks for a proof that the user's own pins contradict;
when the search goes in circles, it proves there is no solution or finds one to steer a fresh search to.

Pure: all I/O goes through the :class:`~venvsmith.core.source.PackageSource` it is handed.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from resolvelib import BaseReporter, ResolutionImpossible, ResolutionTooDeep
from resolvelib.resolvers.abstract import Result
from resolvelib.structs import DirectedGraph

from venvsmith.core import cancellation, requirement_text
from venvsmith.core.distfile import DistFile
from venvsmith.core.errors import DeadlineExceeded, InvalidInput, ServiceError
from venvsmith.core.input_limits import check_requirement, check_requirement_text
from venvsmith.core.jsonlog import ContextThreadPool
from venvsmith.core.pin import Pin
from venvsmith.core.source import PackageSource
from venvsmith.core.target import TargetEnvironment

from .candidate import PYTHON, Candidate, SpecRequirement, UsableRequirement
from .conflicts import SteerableProvider, enumerate_small, propagate_forced
from .direct import direct_file, url_constraints
from .errors import NoSolution, TooManyBacktracks
from .explain import explain_impossible
from .provider import Provider
from .search import Search
from .selection import SelectionPolicy, release_sdist

DEFAULT_MAX_BACKTRACKS = 100_000
#: Pins of one project after which the search counts as going round in circles (resolvelib does not end on a
#: cycle of ``==`` requirements: it re-pins the same projects without rejecting any candidate); the bounded
#: exhaustive check then proves there is no solution, or finds one to steer a fresh search to.
REPIN_LIMIT = 100
#: Searches after an answer for one where a pre-release that the answer's requirements do not ask for is a
#: final release instead (each restricts one more project to final releases, or proves its pre-release needed).
MAX_PRERELEASE_SEARCHES = 4

#: Progress callback: (kind, name, version, detail); kinds are "pinned" and "backtracked".
OnEvent = Callable[[str, str, str, str], None]


def parse_requirement(text: str, *, what: str = "requirement") -> Requirement:
    """Parse one PEP 508 string; raise :class:`InvalidInput` naming it when malformed."""
    text = text.strip()
    if not text:
        raise InvalidInput(text, f"empty {what}")
    check_requirement_text(text, what)
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:  # the column packaging stopped at, and what was meant
        raise InvalidInput(text, requirement_text.explain(text, exc, what), echo=False) from None
    check_requirement(req, text, what)
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


class _GoingInCircles(Exception):
    """The search re-pinned one project :data:`REPIN_LIMIT` times."""


class _Unproven(Exception):
    """The search ended in ``ResolutionImpossible`` after a backjump that skipped pins: not a proof."""

    def __init__(self, conflict: NoSolution) -> None:
        super().__init__("impossible after skipping pins")
        #: The explanation of the conflict the search ended on: the answer once the conflict is proven.
        self.conflict = conflict


@dataclass
class _Counts:
    """Rounds and rejected candidates of all the searches of one resolution: one budget."""

    backtracks: int = 0
    rounds: int = 0


class _Reporter(BaseReporter):
    """Counts rounds and backtracks, enforces limits and forwards progress; never prints."""

    def __init__(
        self,
        max_backtracks: int,
        deadline: float | None,
        on_event: OnEvent | None,
        counts: _Counts | None = None,
        repin_limit: int | None = None,
    ) -> None:
        self.max_backtracks = max_backtracks
        self.deadline = deadline
        self.on_event = on_event
        #: Shared by every search of the same resolution, those that failed included.
        self.counts = counts if counts is not None else _Counts()
        self.repin_limit = repin_limit
        self.pins: Counter[str] = Counter()
        #: identifier -> (requirement, parent) pairs seen, newest last: explains conflicts.
        self.required: dict[str, list[tuple[object, object]]] = defaultdict(list)

    def continued(self) -> _Reporter:
        """The reporter of a further search of the same resolution: its counts go on, re-pins are not limited."""
        return _Reporter(self.max_backtracks, self.deadline, self.on_event, self.counts)

    @property
    def backtracks(self) -> int:
        """Candidates rejected, including those of earlier searches of the same resolution."""
        return self.counts.backtracks

    @property
    def rounds(self) -> int:
        """Rounds of the search, likewise."""
        return self.counts.rounds

    def adding_requirement(self, requirement, parent) -> None:
        self.required[requirement.id].append((requirement, parent))

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlineExceeded("the deadline passed before a resolution was found")
        cancellation.check()  # every caller went away: stop

    def starting_round(self, index: int) -> None:
        self.counts.rounds += 1
        self._check_deadline()

    def rejecting_candidate(self, criterion, candidate) -> None:
        self.counts.backtracks += 1
        if self.backtracks > self.max_backtracks:
            raise TooManyBacktracks(
                f"gave up after {self.backtracks} backtracks (last rejected: {candidate}); "
                "add constraints to narrow the search or raise max_backtracks"
            )
        if self.on_event is not None:
            self.on_event("backtracked", candidate.name, str(candidate.version), "")

    def pinning(self, candidate) -> None:
        self.pins[candidate.id] += 1
        if self.repin_limit is not None and self.pins[candidate.id] > self.repin_limit:
            raise _GoingInCircles(candidate.id)
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
    assert req.marker is not None  # the callers evaluate only requirements with a marker
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
        executor = ContextThreadPool(request.lookahead_workers, thread_name_prefix="lookahead")
    user_specifiers: dict[NormalizedName, list[SpecifierSet]] = defaultdict(list)
    for root in roots:
        user_specifiers[root.name].append(root.specifier)
    provider = SteerableProvider(
        source, request.target, request.policy, constraints, order, executor, pinned_files, user_specifiers
    )
    source.prefetch_files(order)
    provider.speculate({(r.name, r.extras) for r in roots})
    try:
        proof = propagate_forced(provider, roots, request.deadline)
        if proof is not None:
            raise proof
        reporter = _Reporter(request.max_backtracks, request.deadline, on_event, repin_limit=REPIN_LIMIT)
        result, reporter = _confirmed_search(provider, reporter, roots, request)
        result = _without_needless_prereleases(provider, reporter, roots, request, result)
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


def _confirmed_search(
    provider: SteerableProvider, reporter: _Reporter, roots: list[SpecRequirement], request: ResolutionRequest
) -> tuple[Result, _Reporter]:
    """Search; answer "no solution" only when it is true. Returns the result and the last search's reporter.

    resolvelib's backjumping can end in "impossible" for a problem with a solution (see :mod:`.search`), and
    it does not end on a cycle of ``==`` requirements. Either way the bounded exhaustive check runs: it proves
    there is no solution (then resolvelib's conflict is the explanation), or finds a solution to steer a fresh
    search to, or gives up. A steered search that again ends "impossible" unproven, and any search after an
    unproven "impossible", backtracks chronologically, whose "impossible" is a proof; its rounds and
    rejections add to the earlier searches'.
    """
    unproven: _Unproven | None = None
    try:
        return _search(provider, reporter, roots, request), reporter
    except (_GoingInCircles, _Unproven) as exc:
        outcome = enumerate_small(provider, roots, request.deadline)
        if outcome.no_solution is not None:
            raise (exc.conflict if isinstance(exc, _Unproven) else outcome.no_solution) from None
        provider.hints = outcome.solution or {}
        if isinstance(exc, _Unproven):
            unproven = exc
    reporter = reporter.continued()
    if unproven is None:
        try:
            return _search(provider, reporter, roots, request), reporter
        except _Unproven as exc:
            unproven = exc
        reporter = reporter.continued()
    try:
        return _search(provider, reporter, roots, request, chronological=True), reporter
    except TooManyBacktracks as exc:
        raise TooManyBacktracks(
            f"{exc.message}\nBefore that, a faster search had ended on the conflict below, but it skipped choices "
            f"on the way there, so the conflict is not a proof that no solution exists:\n{unproven.conflict.message}"
        ) from None


def _without_needless_prereleases(
    provider: SteerableProvider,
    reporter: _Reporter,
    roots: list[SpecRequirement],
    request: ResolutionRequest,
    result: Result,
) -> Result:
    """An answer whose pre-releases are all justified: the policy allows them, or the answer's own requirements
    on that project admit it (a clause names a pre-release, or no final release satisfies them all), or no
    answer has a final release of that project (the pre-release is necessary).

    The search admits a pre-release when the requirements on the project *at that moment* exclude every final
    release; after backtracking those requirements may be gone while the pin stays (it still satisfies what is
    left). Such a project is then restricted to final releases and the search runs again: its answer replaces
    the first one; its "no solution" proves the pre-release necessary, and the answer stands. One project per
    search, at most :data:`MAX_PRERELEASE_SEARCHES`; their rounds and rejections count into the same budget.
    """
    necessary: set[NormalizedName] = set()
    for _ in range(MAX_PRERELEASE_SEARCHES):
        needless = [name for name in _needless_prereleases(result, provider) if name not in necessary]
        if not needless:
            break
        provider.finals_only.add(needless[0])
        fresh = _Reporter(reporter.max_backtracks, reporter.deadline, reporter.on_event, reporter.counts, REPIN_LIMIT)
        try:
            result, _ = _confirmed_search(provider, fresh, roots, request)
        except NoSolution:
            provider.finals_only.discard(needless[0])
            necessary.add(needless[0])
    return result


def _needless_prereleases(result: Result, provider: Provider) -> list[NormalizedName]:
    """Projects pinned to a pre-release that the requirements on them in ``result`` (with the constraints and
    the policy) do not admit: packaging's ``SpecifierSet.filter`` over the usable versions leaves it out."""
    pinned = {ident: cand for ident, cand in result.mapping.items() if ident != PYTHON}
    on: dict[NormalizedName, list[UsableRequirement]] = defaultdict(list)
    for ident, criterion in result.criteria.items():
        if ident not in pinned:
            continue
        for info in criterion.information:
            if info.parent is None or pinned.get(info.parent.id) == info.parent:
                on[pinned[ident].name].append(info.requirement)
    needless: list[NormalizedName] = []
    for cand in pinned.values():
        if not cand.version.is_prerelease or cand.file.origin == "direct" or cand.name in provider.url_constraints:
            continue  # a URL names its file: nothing else was a choice
        if cand.name not in needless and cand.version not in {
            v for v, _ in provider.allowed(cand.name, on[cand.name], bases=False)
        }:
            needless.append(cand.name)
    return needless


def _search(
    provider: SteerableProvider,
    reporter: _Reporter,
    roots: list[SpecRequirement],
    request: ResolutionRequest,
    *,
    chronological: bool = False,
) -> Result:
    """One resolvelib search; its failures as :class:`ServiceError` subclasses, or :class:`_Unproven`."""
    search = Search(provider, reporter, chronological=chronological)
    try:
        state = search.resolve(roots, max_rounds=request.max_backtracks + 10 * len(roots) + 1000)
    except ResolutionImpossible as exc:
        conflict = explain_impossible(exc.causes, provider, reporter.required)
        if search.skipped:
            raise _Unproven(conflict) from None
        raise conflict from None
    except ResolutionTooDeep:
        raise TooManyBacktracks(
            f"gave up after {reporter.rounds} rounds ({reporter.backtracks} candidates rejected); "
            "add constraints to narrow the search"
        ) from None
    return _result(state)


def _result(state) -> Result:
    """resolvelib's result of a final state: the pins reachable from the root requirements, and their graph.

    resolvelib's own ``_build_result`` walks parents recursively without remembering the keys it is
    visiting, so a cycle of left-over requirements unreachable from the root recurses until RecursionError;
    this is the same computation as a fixed point.
    """
    keys: dict[int, str | None] = {id(v): k for k, v in state.mapping.items()}
    keys[id(None)] = None
    parents = {
        key: {keys[id(p)] for p in criterion.iter_parent() if id(p) in keys}
        for key, criterion in state.criteria.items()
    }
    connected: set[str | None] = {None}
    grown = True
    while grown:
        grown = False
        for key, of in parents.items():
            if key not in connected and not of.isdisjoint(connected):
                connected.add(key)
                grown = True
    graph: DirectedGraph = DirectedGraph()
    graph.add(None)
    for key in parents:
        if key in connected:
            if key not in graph:
                graph.add(key)
            for parent in parents[key]:
                if parent not in graph:
                    graph.add(parent)
                graph.connect(parent, key)
    mapping = {k: v for k, v in state.mapping.items() if k in connected}
    return Result(mapping=mapping, graph=graph, criteria=state.criteria)


def _with_hash(file: DistFile, source: PackageSource) -> DistFile:
    """Every pinned file carries a sha256: files listed without one (find-links) are hashed now."""
    if file.sha256:
        return file
    hashed = source.resolve_file_url(file.url)
    assert hashed.sha256 is not None  # resolve_file_url computes it
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
