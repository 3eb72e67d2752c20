"""Errors only the resolver raises; the shared ones are in :mod:`venvsmith.core.errors`."""

from __future__ import annotations

from venvsmith.core.errors import ServiceError


class NoSolution(ServiceError):
    """No set of versions satisfies the requirements; ``message`` explains the conflict."""

    status = "FAILED_PRECONDITION"


class TooManyBacktracks(ServiceError):
    """The resolver backtracked more than the allowed number of rounds."""

    status = "RESOURCE_EXHAUSTED"
