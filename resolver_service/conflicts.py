"""Proofs that no pinned set exists, found apart from resolvelib's search.

Two checks over the same *relaxed* problem, whose candidates for an identifier are every usable version that
satisfies its requirements and constraints (pre-releases and yanked files included, whatever the policy):
any set the search could pin is a solution of the relaxed problem, so "the relaxed problem has no
solution" is a proof that no pinned set exists, and never rejects a satisfiable request.

- :func:`propagate_forced` follows only identifiers left with a single candidate (unit propagation), from the
  root requirements: a conflict among the user's own pins and what they force is found before any search,
  reading the metadata of those forced candidates only (wheels first, so no sdist is built when a wheel
  already shows the conflict).
- :func:`enumerate_small` is a bounded exhaustive search (fewest candidates first), run when resolvelib keeps
  re-pinning the same projects, the shape it does not end on (a cycle of ``==`` requirements). It either
  proves there is no solution, names a solution the search can be steered to, or gives up at its budget.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from packaging.utils import NormalizedName
from resolvelib.structs import RequirementInformation

from venvsmith.core import cancellation
from venvsmith.core.errors import DeadlineExceeded, ServiceError

from .candidate import PYTHON, AnyCandidate, AnyRequirement, Candidate, SpecRequirement, UnusableRequirement
from .errors import ConflictChain, NoSolution
from .explain import explain_impossible
from .provider import Provider

#: Search nodes (candidates tried) the exhaustive check may visit before giving up.
MAX_NODES = 2000
#: Distinct candidates whose dependencies the exhaustive check may read (each may be a metadata fetch).
MAX_EXPANDED = 200
#: ... of which ones the search has not read yet (a fetch each, perhaps an sdist build).
MAX_NEW_READS = 20
#: The propagation of forced candidates reads at most this many (each of which the search would read anyway).
MAX_FORCED = 1000
#: Dependency lines a proof shows (the explanation travels in a gRPC status, whose size is limited).
MAX_FACTS = 40
#: (requirement, candidate) checks either may make.
MAX_CHECKS = 200_000

Info = tuple[AnyRequirement, AnyCandidate | None]


class _GiveUp(Exception):
    """The bounded check ran out of budget (or hit an index error): no conclusion."""


class SteerableProvider(Provider):
    """The provider, with ``hints`` (identifier -> candidate) tried first when they match."""

    hints: Mapping[str, AnyCandidate] = {}

    def has_read(self, candidate: AnyCandidate) -> bool:
        """Whether ``candidate``'s dependencies are known without reading anything."""
        return not isinstance(candidate, Candidate) or candidate in self._metadata

    def find_matches(self, identifier, requirements, incompatibilities):
        matches = super().find_matches(identifier, requirements, incompatibilities)
        hinted = self.hints.get(identifier)
        if hinted is not None and hinted in matches:
            matches = [hinted, *(m for m in matches if m != hinted)]
        return matches


@dataclass
class _Relaxed:
    """The relaxed problem over one provider: candidates and dependencies, memoised."""

    provider: SteerableProvider
    max_expanded: int = MAX_EXPANDED
    #: Of those, how many the provider had not read already (each a possible metadata fetch or sdist build).
    max_new_reads: int = MAX_NEW_READS
    new_reads: int = 0
    max_checks: int = MAX_CHECKS
    #: ``time.monotonic()`` value after which the check stops with :class:`DeadlineExceeded`.
    deadline: float | None = None
    deps: dict[AnyCandidate, list[AnyRequirement]] = field(default_factory=dict)
    #: (name, extras) -> one candidate object per usable version, so the requirements' memos are reused.
    pools: dict[tuple[str, frozenset], list[AnyCandidate]] = field(default_factory=dict)
    #: (identifier, ids of its requirements in order) -> candidates: each branch adds requirements at the end.
    memo: dict[tuple[str, tuple[int, ...]], list[AnyCandidate]] = field(default_factory=dict)
    checks: int = 0

    def candidates(self, ident: str, reqs: Sequence[AnyRequirement]) -> list[AnyCandidate]:
        """Every candidate of ``ident`` the search could pin under ``reqs`` (a superset of its choices)."""
        ids = tuple(id(r) for r in reqs)
        held = self.memo.get((ident, ids))
        if held is not None:
            return held
        direct = any(getattr(r, "direct", None) is not None for r in reqs)
        start = len(reqs) - 1
        if direct:
            start = 0
        else:
            while start > 0 and (ident, ids[:start]) not in self.memo:
                start -= 1
        held = self.memo[ident, ids[:start]] if start else self._pool(ident, reqs)
        for k in range(start, len(reqs)):
            self.checks += len(held)
            if self.checks > self.max_checks:
                raise _GiveUp("too many checks")
            held = [c for c in held if self.provider.is_satisfied_by(reqs[k], c)]
            if not direct:
                self.memo[ident, ids[: k + 1]] = held
        self.memo[ident, ids] = held
        return held

    def _pool(self, ident: str, reqs: Sequence[AnyRequirement]) -> list[AnyCandidate]:
        """The candidates of ``ident`` before its requirements: usable versions within the constraints."""
        provider = self.provider
        if ident == PYTHON:
            return [provider.python]
        if any(isinstance(r, UnusableRequirement) for r in reqs):
            return []
        name = NormalizedName(reqs[0].name)
        extras = next((r.extras for r in reqs if isinstance(r, SpecRequirement)), frozenset())
        direct = {r.direct for r in reqs if isinstance(r, SpecRequirement) and r.direct is not None}
        if name in provider.url_constraints:  # as Provider.find_matches: the constrained file is the only one
            direct.add(provider.url_constraints[name])
        if len(direct) > 1:
            return []
        if direct:
            file = next(iter(direct))
            pool: list[AnyCandidate] = [Candidate(name, file.version, file, extras)]
        else:
            held = self.pools.get((name, extras))
            if held is None:
                try:
                    selection = provider.selection(name)
                except ServiceError as exc:
                    raise _GiveUp(str(exc)) from None
                held = self.pools[name, extras] = [Candidate(name, v, f, extras) for v, f in selection.by_version]
            pool = held
            if name in provider.finals_only:
                pool = [c for c in pool if not c.version.is_prerelease]
        constraints = provider.constraints.get(name, ())
        return [c for c in pool if all(s.contains(c.version, prereleases=True) for s in constraints)]

    def dependencies(self, candidate: AnyCandidate) -> list[AnyRequirement]:
        held = self.deps.get(candidate)
        if held is None:
            if len(self.deps) >= self.max_expanded:
                raise _GiveUp("too many candidates to read")
            if not self.provider.has_read(candidate):
                self.new_reads += 1
                if self.new_reads > self.max_new_reads:
                    raise _GiveUp("too many new metadata reads")
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise DeadlineExceeded("the deadline passed before a resolution was found")
            cancellation.check()
            try:
                held = list(self.provider.get_dependencies(candidate))
            except ServiceError as exc:
                raise _GiveUp(str(exc)) from None
            self.deps[candidate] = held
        return held


def _add(infos: dict[str, list[Info]], deps: Sequence[AnyRequirement], parent: AnyCandidate | None) -> None:
    for req in deps:
        infos.setdefault(req.id, []).append((req, parent))


def _required_by(infos: Mapping[str, Sequence[Info]]) -> dict[str, list[Info]]:
    """``explain``'s view: identifier -> (requirement, parent) pairs."""
    return {ident: list(pairs) for ident, pairs in infos.items()}


# -- unit propagation ---------------------------------------------------------------------------------------


def propagate_forced(
    provider: SteerableProvider, roots: Sequence[AnyRequirement], deadline: float | None = None
) -> NoSolution | None:
    """A :class:`NoSolution` when the root requirements and the candidates they force contradict, else ``None``."""
    relaxed = _Relaxed(
        provider, max_expanded=MAX_FORCED, max_new_reads=MAX_FORCED, max_checks=5 * MAX_CHECKS, deadline=deadline
    )
    infos: dict[str, list[Info]] = {}
    _add(infos, roots, None)
    forced: dict[str, AnyCandidate] = {}
    #: identifier -> the requirements that left its forced candidate alone (all from earlier forced ones).
    reasons: dict[str, list[Info]] = {}
    try:
        while True:
            single: list[tuple[str, AnyCandidate]] = []
            for ident, pairs in infos.items():
                if ident in forced:
                    continue
                choices = relaxed.candidates(ident, [r for r, _ in pairs])
                if not choices:
                    return _forced_conflict(provider, ident, pairs, infos, reasons, forced)
                if len(choices) == 1:
                    single.append((ident, choices[0]))
            if not single:
                return None
            # Wheels' metadata in parallel (never an sdist's: that may be a build the proof does not need).
            provider.source.prefetch_metadata(c.file for _, c in single if isinstance(c, Candidate) and c.file.is_wheel)
            # Read wheel metadata before an sdist's: the sdist may need a build to tell its dependencies.
            ident, cand = min(single, key=lambda ic: (not _cheap(ic[1]), provider.user_requested.get(ic[0], 1 << 30)))
            forced[ident] = cand
            reasons[ident] = list(infos[ident])
            deps = relaxed.dependencies(cand)
            for req in deps:
                held = forced.get(req.id)
                if held is not None and not provider.is_satisfied_by(req, held):
                    _add(infos, [req], cand)
                    return _forced_conflict(provider, req.id, infos[req.id], infos, reasons, forced)
            _add(infos, deps, cand)
    except _GiveUp:
        return None


def _cheap(candidate: AnyCandidate) -> bool:
    return not isinstance(candidate, Candidate) or candidate.file.is_wheel


def _forced_conflict(
    provider: Provider,
    ident: str,
    pairs: Sequence[Info],
    infos: Mapping[str, Sequence[Info]],
    reasons: Mapping[str, Sequence[Info]],
    forced: Mapping[str, AnyCandidate],
) -> NoSolution:
    """The usual explanation of the conflict on ``ident``, then the derivation of each forced candidate in it."""
    causes = [RequirementInformation(req, parent) for req, parent in pairs]
    base = explain_impossible(causes, provider, _required_by(infos))
    lines = ["  Found without searching (every package below had one version left, so a solution must have it):"]

    # The forced candidates behind the conflict, in the order they were forced (each one's reasons first).
    behind: set[str] = set()
    todo = [p for _, p in pairs if p is not None]
    while todo:
        cand = todo.pop()
        if cand.id not in behind:
            behind.add(cand.id)
            todo.extend(p for _, p in reasons.get(cand.id, ()) if p is not None)
    for ident_, why in reasons.items():
        if ident_ in behind:
            lines.extend(_why(r, p) for r, p in why)
            lines.append(f"    - so {forced[ident_]} is the only version of {ident_} left")
    if len(lines) > MAX_FACTS + 1:
        lines[1:-MAX_FACTS] = [f"    ... {len(lines) - MAX_FACTS - 1} earlier steps"]
    lines.extend(_why(r, p) for r, p in pairs)
    if ident == PYTHON:
        lines.append(f"    - so the target's Python {provider.python.version} is ruled out.")
    else:
        lines.append(f"    - so no version of {ident} is left.")
    return NoSolution(base.message + "\n" + "\n".join(dict.fromkeys(lines)), base.chains, base.notes)


def _why(req: AnyRequirement, parent: AnyCandidate | None) -> str:
    return f"    - you require {req}" if parent is None else f"    - {parent} depends on {req}"


# -- bounded exhaustive search ------------------------------------------------------------------------------


@dataclass
class Enumeration:
    """What :func:`enumerate_small` concluded: a proof (``no_solution``), a solution, or neither."""

    no_solution: NoSolution | None = None
    #: identifier -> candidate of one solution of the relaxed problem (hints for the search).
    solution: dict[str, AnyCandidate] | None = None
    nodes: int = 0


@dataclass
class _Enumerator:
    relaxed: _Relaxed
    max_nodes: int
    nodes: int = 0
    #: Identifiers on which some branch failed: the explanation lists the requirements on these.
    conflicts: set[str] = field(default_factory=set)

    def search(self, infos: dict[str, list[Info]], chosen: dict[str, AnyCandidate]) -> dict | None:
        """Depth first, fewest candidates first; ``None`` when no extension of ``chosen`` is a solution."""
        open_choices: list[tuple[int, str, list[AnyCandidate]]] = []
        for ident, pairs in infos.items():
            if ident in chosen:
                continue
            choices = self.relaxed.candidates(ident, [r for r, _ in pairs])
            if not choices:
                self.conflicts.add(ident)
                return None
            open_choices.append((len(choices), ident, choices))
        if not open_choices:
            return dict(chosen)
        _, ident, choices = min(open_choices, key=lambda t: (t[0], t[1]))
        for cand in choices:
            self.nodes += 1
            if self.nodes > self.max_nodes:
                raise _GiveUp("too many combinations")
            deps = self.relaxed.dependencies(cand)
            broken = [d for d in deps if d.id in chosen and not self.relaxed.provider.is_satisfied_by(d, chosen[d.id])]
            if broken:
                self.conflicts.update(d.id for d in broken)
                continue
            grown = {k: list(v) for k, v in infos.items()}
            _add(grown, deps, cand)
            found = self.search(grown, {**chosen, ident: cand})
            if found is not None:
                return found
        self.conflicts.add(ident)
        return None


def enumerate_small(
    provider: SteerableProvider,
    roots: Sequence[AnyRequirement],
    deadline: float | None = None,
    max_nodes: int | None = None,
) -> Enumeration:
    """Search the relaxed problem exhaustively within ``max_nodes`` (default :data:`MAX_NODES`) candidates tried."""
    relaxed = _Relaxed(provider, deadline=deadline)
    enumerator = _Enumerator(relaxed, MAX_NODES if max_nodes is None else max_nodes)
    infos: dict[str, list[Info]] = {}
    _add(infos, roots, None)
    try:
        solution = enumerator.search(infos, {})
    except _GiveUp:
        return Enumeration(nodes=enumerator.nodes)
    if solution is not None:
        return Enumeration(solution=solution, nodes=enumerator.nodes)
    return Enumeration(no_solution=_exhausted(provider, roots, relaxed, enumerator), nodes=enumerator.nodes)


def _exhausted(provider: Provider, roots: Sequence[AnyRequirement], relaxed: _Relaxed, run: _Enumerator) -> NoSolution:
    """The requirements that make every combination fail: the user's and each tried candidate's on them."""
    ids = run.conflicts
    names = ", ".join(sorted(ids))
    lines = [
        f"no solution for the requirements: every combination of versions of {names} was checked "
        f"({run.nodes} candidates tried) and each breaks one of:"
    ]
    mine = [r for r in roots if r.id in ids]
    if mine:
        lines.append(f"  - you require {', '.join(map(str, mine))}")
    chains = [ConflictChain(_project(r.id), (f"{r} (required by you)",)) for r in mine]
    for name in sorted({_project(ident) for ident in ids}):
        for spec in provider.constraints.get(name, ()):
            lines.append(f"  - a constraint limits {name}{spec}")
            chains.append(ConflictChain(name, (f"{name}{spec} (a constraint)",)))
    facts = sorted(
        (str(cand), str(dep), _project(dep.id))
        for cand, deps in relaxed.deps.items()
        if cand.id in ids
        for dep in deps
        if dep.id in ids
    )
    lines.extend(f"  - {cand} depends on {dep}" for cand, dep, _ in facts[:MAX_FACTS])
    chains.extend(ConflictChain(project, (f"{dep} (required by {cand})",)) for cand, dep, project in facts)
    if len(facts) > MAX_FACTS:
        lines.append(f"  ... and {len(facts) - MAX_FACTS} more")
    return NoSolution("\n".join(lines), chains)


def _project(ident: str) -> NormalizedName:
    """The project an identifier is about (``python`` for the target's Python)."""
    return NormalizedName("python" if ident == PYTHON else ident.split("[", 1)[0])
