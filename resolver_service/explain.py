"""Human explanations of why no pinned set exists, naming the requirement chains on each side."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from venvsmith.core.errors import IndexUnavailable, Violation

from .candidate import PYTHON, BaseRequirement, PythonRequirement, SpecRequirement, UnusableRequirement
from .errors import ConflictChain, NoSolution
from .selection import yanked_matches

MAX_VERSIONS_SHOWN = 12


def chain(parent, required: Mapping[str, Sequence[tuple[object, object]]], depth: int = 0) -> str:
    """How ``parent`` (a candidate, or ``None`` for the root) came to be required: "you require a -> a==1 ..."."""
    if parent is None:
        return "you"
    entries = required.get(parent.id) or required.get(parent.name) or ()
    if depth > 20 or not entries:
        return str(parent)
    # Prefer a root requirement; else the first parent that brought it in.
    req, grand = next(((r, p) for r, p in entries if p is None), entries[0])
    if grand is None:
        return f"you require {req} -> {parent}"
    return f"{chain(grand, required, depth + 1)} -> {parent}"


def chain_steps(requirement, parent, required: Mapping[str, Sequence[tuple[object, object]]],
                depth: int = 0) -> list[str]:
    """Root-first steps by which ``requirement`` came to be needed: "a>=1 (required by you)", "b<2 (required by
    a==1.0)", ..., ending with ``requirement`` itself (required by ``parent``)."""
    step = f"{_requirement_text(requirement)} (required by {'you' if parent is None else parent})"
    entries = () if parent is None else required.get(parent.id) or required.get(parent.name) or ()
    if depth > 20 or not entries:
        return [step]
    req, grand = next(((r, p) for r, p in entries if p is None), entries[0])
    return [*chain_steps(req, grand, required, depth + 1), step]


def _who(parent, required) -> str:
    text = chain(parent, required)
    return "you require" if text == "you" else f"{text} requires"


def _versions_line(name: str, provider) -> str:
    try:
        selection = provider.selection(name)
    except IndexUnavailable:
        return ""
    target = provider.target
    where = f"Python {target.python_version}, {target.markers.get('sys_platform', '?')}"
    usable = [f"{v} (yanked)" if f.is_yanked else str(v) for v, f in selection.by_version]
    if not selection.all_versions:
        return f"    No files of {name} were found in the configured indexes and find-links."
    lines = []
    if usable:
        shown = ", ".join(usable[:MAX_VERSIONS_SHOWN]) + (" ..." if len(usable) > MAX_VERSIONS_SHOWN else "")
        lines.append(f"    Versions of {name} usable for the target ({where}): {shown}")
    else:
        lines.append(f"    No file of {name} is usable for the target ({where}).")
    if selection.rejected:
        why = "; ".join(f"{n} file(s): {r}" for r, n in selection.rejected.most_common())
        lines.append(f"    Files set aside: {why}")
    if selection.sources:
        listed = ", ".join(sorted(s for s in selection.sources if s)) or "a direct URL"
        lines.append(f"    {name} was listed by: {listed}")
    return "\n".join(lines)


def explain_impossible(causes, provider, required) -> NoSolution:
    """Build the :class:`NoSolution` for resolvelib's ``ResolutionImpossible.causes``."""
    by_id: dict[str, list] = defaultdict(list)
    for info in causes:
        by_id[info.requirement.id].append(info)
    sections = []
    chains: list[ConflictChain] = []
    notes: list[Violation] = []
    for ident, infos in sorted(by_id.items(), key=lambda kv: (kv[0] == PYTHON, kv[0])):
        first = infos[0].requirement
        project = "python" if ident == PYTHON else first.name
        if isinstance(first, UnusableRequirement):
            chains.append(ConflictChain(project, (f"{first.name} cannot be used: {first.reason}",)))
        else:
            chains.extend(ConflictChain(project, tuple(chain_steps(i.requirement, i.parent, required)))
                          for i in infos)
        if ident == PYTHON:
            lines = [f"  The target environment has Python {provider.python.version}, but:"]
            for info in infos:
                lines.append(f"    - {chain(info.parent, required)} requires {info.requirement}")
            sections.append("\n".join(lines))
            continue
        if isinstance(first, UnusableRequirement):
            sections.append(f"  {first.name} cannot be used: {first.reason}")
            continue
        name = first.name
        texts = sorted({_requirement_text(i.requirement) for i in infos})
        if len(infos) == 1 or len(texts) == 1:
            head = f"  No version of {name} satisfies {texts[0]}:"
        else:
            head = f"  No version of {name} satisfies all of {', '.join(texts)}:"
        lines = [head]
        for info in infos:
            lines.append(f"    - {_who(info.parent, required)} {_requirement_text(info.requirement)}")
        constraints = provider.constraints.get(name, ())
        for spec in constraints:
            if spec:
                lines.append(f"    - a constraint limits {name}{spec}")
                chains.append(ConflictChain(name, (f"{name}{spec} (a constraint)",)))
        pinned = provider.url_constraints.get(name)
        if pinned is not None:
            lines.append(f"    - a constraint limits {name} to {pinned.url} (version {pinned.version})")
            chains.append(ConflictChain(name, (f"{name} @ {pinned.url} (a constraint, version {pinned.version})",)))
        yanked = _yanked_line(name, [i.requirement for i in infos], provider)
        if yanked:
            lines.append(yanked)
            notes.append(Violation("YANKED", name, yanked.strip()))
        versions = _versions_line(name, provider)
        if versions:
            lines.append(versions)
        sections.append("\n".join(lines))
    return NoSolution("no solution for the requirements:\n" + "\n".join(sections), chains, notes)


def _yanked_line(name: str, requirements, provider) -> str:
    """Say so when yanked files would satisfy the requirements: only the user's own pin may take them."""
    try:
        selection = provider.selection(name)
    except IndexUnavailable:
        return ""
    specs = [r.specifier for r in requirements if isinstance(r, SpecRequirement | BaseRequirement)]
    found = yanked_matches(selection, [*specs, *provider.constraints.get(name, ())])
    if not found:
        return ""
    which = ", ".join(f"{name} {v} is yanked" + (f" ({f.yanked})" if f.yanked else "") for v, f in found[:3])
    return (
        f"    {which}: a yanked version is chosen only when your own requirement or constraint pins it "
        "with == or ===, and no unyanked file satisfies it"
    )


def _requirement_text(req) -> str:
    if isinstance(req, SpecRequirement | BaseRequirement | PythonRequirement):
        return str(req)
    return repr(req)
