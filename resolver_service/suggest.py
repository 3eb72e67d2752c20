"""Hints of a failed resolution that apply to it: "did you mean" for a name no index knows, and the first-index
hint only when a name of the conflict was found on an index that hid later ones."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from packaging.utils import canonicalize_name

#: How alike two canonical names must be (difflib ratio) to suggest one for the other.
CUTOFF = 0.75


def close_names(name: str, known: Iterable[str], limit: int = 3) -> list[str]:
    """The known project names closest to ``name`` (canonical forms compared), best first; never ``name``."""
    wanted = canonicalize_name(name)
    pool = sorted({canonicalize_name(k) for k in known} - {wanted})
    return difflib.get_close_matches(wanted, pool, n=limit, cutoff=CUTOFF)


def did_you_mean(missing: Iterable[str], known: Iterable[str]) -> list[str]:
    """One ``hint:`` line per name of ``missing`` (no index lists it) that is close to a ``known`` name."""
    known = list(known)
    lines = []
    for name in missing:
        close = close_names(name, known)
        if close:
            lines.append(f"hint: no index lists {name}; did you mean {' or '.join(f'`{c}`' for c in close)}?")
    return lines
