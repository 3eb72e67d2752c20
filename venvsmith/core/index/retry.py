"""Retries of index GETs: :class:`urllib3.Retry` with the server's ``Retry-After`` honoured but capped, one
budget of failed tries across connect / read / status failures, and no sleep past the request's deadline.

Imported by the HTTP client on its first request (it imports urllib3).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import urllib3
from urllib3.exceptions import InvalidHeader, MaxRetryError

#: Statuses worth another try: the server is overloaded or briefly broken.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest ``Retry-After`` honoured, in seconds (a longer one is cut to this).
MAX_RETRY_AFTER = 10.0
#: Longest exponential backoff between two tries, in seconds.
MAX_BACKOFF = 10.0


class IndexRetry(urllib3.Retry):
    """urllib3's retry policy with three bounds of ours.

    :param failures: failed tries retried in all (connect, read and status failures together; redirects
        are counted apart by ``redirect``); ``None``: only urllib3's own counts.
    :param deadline: ``time.monotonic()`` value past which no retry starts and no sleep reaches.
    :param max_retry_after: cap of the server's ``Retry-After``, in seconds.
    :param sleeper: called with each delay (``time.sleep``; tests pass a recorder).
    :param allow: an :class:`~.allowlist.AllowList` every redirect's target must pass *before* it is followed;
        a refused one ends the request with a :class:`MaxRetryError` whose ``denied`` is the
        :class:`~venvsmith.core.errors.UrlNotAllowed` (``None``: redirects are not checked).
    """

    def __init__(
        self,
        *args: Any,
        failures: int | None = None,
        deadline: float | None = None,
        max_retry_after: float = MAX_RETRY_AFTER,
        sleeper: Callable[[float], None] = time.sleep,
        allow: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.allow = allow
        self.failures = failures
        self.deadline = deadline
        self.max_retry_after = max_retry_after
        self.sleeper = sleeper

    def new(self, **kw: Any) -> IndexRetry:
        kw.setdefault("failures", self.failures)
        kw.setdefault("deadline", self.deadline)
        kw.setdefault("max_retry_after", self.max_retry_after)
        kw.setdefault("sleeper", self.sleeper)
        kw.setdefault("allow", self.allow)
        return super().new(**kw)

    def failed_tries(self) -> int:
        """Tries in the history that failed (not redirects)."""
        return sum(1 for step in self.history if step.redirect_location is None)

    def is_exhausted(self) -> bool:
        if super().is_exhausted():
            return True
        failed = self.failed_tries()
        if self.failures is not None and failed > self.failures:
            return True
        last_failed = bool(self.history) and self.history[-1].redirect_location is None
        return last_failed and self.deadline is not None and time.monotonic() >= self.deadline

    def increment(self, *args: Any, **kwargs: Any) -> IndexRetry:
        """As urllib3's; the :class:`MaxRetryError` it raises carries ``tries``, the tries made in all.

        urllib3 calls it with the redirect response before following a redirect: a target outside ``allow``
        raises there, so no connection is made to it.
        """
        response = kwargs.get("response")
        location = response.get_redirect_location() if self.allow is not None and response is not None else None
        if location:
            from urllib.parse import urljoin

            from ..errors import UrlNotAllowed
            from .auth import redact

            url = kwargs.get("url", args[1] if len(args) > 1 else "")
            try:
                self.allow.check(urljoin(url or "", location))
            except UrlNotAllowed as denied:
                error = MaxRetryError(kwargs.get("_pool"), url or "", reason=None)  # type: ignore[arg-type]
                error.denied = UrlNotAllowed(  # type: ignore[attr-defined]
                    denied.url, f"a redirect leads there from {redact(url or '')}: {denied.why}")
                raise error from None
        try:
            return super().increment(*args, **kwargs)
        except MaxRetryError as exc:
            exc.tries = self.failed_tries() + 1  # type: ignore[attr-defined]
            raise

    def get_retry_after(self, response: urllib3.BaseHTTPResponse) -> float | None:
        """The server's ``Retry-After`` in seconds, capped to ``max_retry_after`` and the deadline; ``None``
        when absent or unreadable (a malformed header falls back to the backoff)."""
        try:
            seconds = super().get_retry_after(response)
        except InvalidHeader:
            return None
        if seconds is None:
            return None
        return self._within_deadline(min(seconds, self.max_retry_after))

    def sleep(self, response: urllib3.BaseHTTPResponse | None = None) -> None:
        """Sleep the server's ``Retry-After`` (even 0) when it sent one, else the jittered backoff."""
        delay = self.get_retry_after(response) if self.respect_retry_after_header and response else None
        if delay is None:
            delay = self._within_deadline(self.get_backoff_time())
        if delay > 0:
            self.sleeper(delay)

    def _within_deadline(self, seconds: float) -> float:
        if self.deadline is not None:
            seconds = min(seconds, self.deadline - time.monotonic())
        return max(0.0, seconds)


def index_retry(
    tries: int, *, backoff: float, max_redirects: int, sleeper: Callable[[float], None] = time.sleep
) -> IndexRetry:
    """The policy of an index client making at most ``tries`` tries of each GET (``deadline`` is set per
    request with ``.new(deadline=...)``): connection failures, read failures and 429/5xx answers are retried
    with exponential backoff plus jitter, or after the server's ``Retry-After``; other errors (TLS, proxy
    configuration) are not; redirects are followed up to ``max_redirects``."""
    retries = max(0, tries - 1)
    return IndexRetry(
        total=None,  # the ``failures`` budget bounds the tries; urllib3's total would count redirects too
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        redirect=max_redirects,
        failures=retries,
        allowed_methods=frozenset({"GET", "HEAD"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff,
        backoff_jitter=backoff,
        backoff_max=MAX_BACKOFF,
        respect_retry_after_header=True,
        raise_on_redirect=True,
        raise_on_status=False,
        sleeper=sleeper,
    )
