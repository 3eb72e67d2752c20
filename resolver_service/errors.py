"""Errors only the resolver raises; the shared ones are in :mod:`venvsmith.core.errors`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from venvsmith.core.errors import ServiceError, Violation


@dataclass(frozen=True)
class ConflictChain:
    """One side of a conflict as data: ``project`` and the steps that require it, root first.

    Each step reads "requirement (required by X)", e.g. ``("a==1 (required by you)", "b<2 (required by a 1.0)")``.
    """

    project: str
    steps: tuple[str, ...]

    def text(self) -> str:
        return " -> ".join(self.steps)


class NoSolution(ServiceError):
    """No set of versions satisfies the requirements; ``message`` explains the conflict.

    ``chains`` carries the conflicting requirement chains as data (one PreconditionFailure violation each);
    ``notes`` are further violations that are not chains (``YANKED``: yanked files would satisfy the request).
    """

    status = "FAILED_PRECONDITION"
    error_reason = "NO_SOLUTION"

    def __init__(self, message: str, chains: Sequence[ConflictChain] = (), notes: Sequence[Violation] = ()) -> None:
        super().__init__(message)
        self.chains = tuple(chains)
        self.notes = tuple(notes)

    def facts(self) -> dict[str, str]:
        projects = sorted({c.project for c in self.chains})
        return {"projects": ",".join(projects)} if projects else {}

    def violations(self) -> list[Violation]:
        if not self.chains:
            return [*super().violations(), *self.notes]
        return [*(Violation("CONFLICT", c.project, c.text()) for c in self.chains), *self.notes]


class TooManyBacktracks(ServiceError):
    """The resolver backtracked more than the allowed number of rounds."""

    status = "RESOURCE_EXHAUSTED"
    error_reason = "TOO_MANY_BACKTRACKS"
