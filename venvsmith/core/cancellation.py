"""Cancellation of work whose callers have all gone away.

A call's work (a resolution) runs with a *should stop* test set for its thread (:func:`stopping_when`); the
search checks it each round (:func:`check`, next to its deadline) and ends with :class:`Cancelled`. Work shared by
several callers (:meth:`venvsmith.core.singleflight.SingleFlight.do_shared`) stops only when every one of them
has gone: one caller cancelling does not take the answer from the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import Cancelled

__all__ = ["Cancelled", "check", "current_caller", "serving", "should_stop", "stopping_when"]

ShouldStop = Callable[[], bool]
IsActive = Callable[[], bool]

_should_stop: ContextVar[ShouldStop | None] = ContextVar("venvsmith_should_stop", default=None)
_caller: ContextVar[IsActive | None] = ContextVar("venvsmith_caller_active", default=None)


@contextmanager
def serving(is_active: IsActive | None) -> Iterator[None]:
    """Within the block, work done for a caller is shared as that caller's (:func:`current_caller`): it stops
    once ``is_active()`` is false and no other caller shares it. Set it in each thread doing a call's work."""
    token = _caller.set(is_active)
    try:
        yield
    finally:
        _caller.reset(token)


def current_caller() -> IsActive | None:
    """The ``is_active`` test of the caller this thread works for (``None``: always active)."""
    return _caller.get()


def should_stop() -> bool:
    """Whether the work of this thread should stop (as :func:`check`, without raising)."""
    test = _should_stop.get()
    return test is not None and test()


@contextmanager
def stopping_when(should_stop: ShouldStop | None) -> Iterator[None]:
    """Within the block, :func:`check` raises :class:`Cancelled` once ``should_stop()`` is true."""
    token = _should_stop.set(should_stop)
    try:
        yield
    finally:
        _should_stop.reset(token)


def check() -> None:
    """Raise :class:`Cancelled` when the work of this thread should stop (no caller is waiting for it)."""
    should_stop = _should_stop.get()
    if should_stop is not None and should_stop():
        raise Cancelled("every caller cancelled: the work stopped")
