"""One pooled HTTP client for every index request: retries with backoff, auth errors, trust store.

The client is shared by many threads at once (page prefetching, the resolver's look-ahead, concurrent
RPCs). It sends GETs through urllib3: a pool of HTTP/1.1 keep-alive connections per host (a connection serves
one request at a time, so it is thread-safe), redirects followed by urllib3, and retries by
:class:`~.retry.IndexRetry` (a :class:`urllib3.Retry`: backoff with jitter, ``Retry-After`` honoured and
capped, never past the request's deadline). Measured against the real index (97 project pages, 13 MB, from 16
threads) urllib3 spends 0.55-0.7x the CPU of httpx's synchronous client (which parses HTTP/1.1 in pure Python
through h11 and several layers of httpcore), about 1.5 ms instead of 2.3 ms per GET; on a 2-core machine next
to the CPU-bound resolver and page parser that CPU is wall time. HTTP/2 (through httpx's asynchronous client)
brought nothing over the HTTP/1.1 pool and cost 3-4x the wall time next to CPU-bound threads.

TLS trust and proxies are set up by :mod:`.transport`. urllib3 is not imported before the first request.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from ..errors import DeadlineExceeded, IndexUnavailable
from .auth import Auth, Credential, redact, split_userinfo
from .budget import Fetch
from .limits import MAX_FETCH_SECONDS
from .transport import ProxyConfigError, TrustStoreError, load_context

if TYPE_CHECKING:
    import urllib3

    from .allowlist import AllowList
    from .retry import IndexRetry
    from .transport import Managers

#: Connections kept per host. Enough for the look-ahead; bursts of 30+ new TLS connections to one host were
#: seen to stall some handshakes for 5 s on the way to the real index.
MAX_CONNECTIONS = 24
#: Redirects followed for one request.
MAX_REDIRECTS = 10
#: Default chunk size of :meth:`Response.iter_bytes`.
CHUNK = 64 * 1024

_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.I)
_user_agent: list[str] = []


def user_agent() -> str:
    """``venvsmith/<version> urllib3/<version>``, built on first use."""
    if not _user_agent:
        import urllib3

        from venvsmith import __version__  # the package's own version: no distribution lookup over sys.path

        _user_agent.append(f"venvsmith/{__version__} urllib3/{urllib3.__version__}")
    return _user_agent[0]


def __getattr__(name: str) -> Any:  # ``USER_AGENT`` stays available as a module constant, computed lazily
    if name == "USER_AGENT":
        return user_agent()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class TransportError(Exception):
    """The connection failed or broke; ``kind`` names the failure, e.g. ``ConnectError``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


# ------------------------------------------------------------------------------------------- responses


class Response:
    """An HTTP response; its body is read on demand (:meth:`read`, :attr:`content`, :meth:`iter_bytes`).

    ``headers`` is a case-insensitive mapping (several values of one header joined by ``", "``); ``url`` is
    the URL that answered, after redirects. Reading the body may raise :class:`TransportError`.
    """

    status_code: int
    headers: Mapping[str, str]
    url: str

    def __init__(
        self, raw: urllib3.BaseHTTPResponse, url: str, errors: tuple, max_bytes: int | None = None,
        fetch: Fetch | None = None,
    ) -> None:
        self.status_code = raw.status
        self.headers = raw.headers
        self.url = url
        self._raw = raw
        self._errors = errors
        self._content: bytes | None = None
        #: Most (decoded) body bytes read; more is a :class:`TransportError` of kind ``TooLarge``.
        self.max_bytes = max_bytes
        self._fetch = fetch
        self.is_closed = False

    @property
    def content(self) -> bytes:
        """The whole (decoded) body, read now if it was not yet."""
        return self.read()

    @property
    def text(self) -> str:
        match = _CHARSET.search(self.headers.get("content-type", ""))
        encoding = match.group(1) if match else "utf-8"
        try:
            return self.read().decode(encoding, errors="replace")
        except LookupError:
            return self.read().decode("utf-8", errors="replace")

    def read(self) -> bytes:
        if self._content is None:
            self._content = b"".join(self._stream(CHUNK))
        return self._content

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        """The (decoded) body in chunks of about ``chunk_size`` bytes."""
        if self._content is not None:
            size = chunk_size or max(1, len(self._content))
            for start in range(0, len(self._content), size):
                yield self._content[start : start + size]
            return
        yield from self._stream(chunk_size or CHUNK)

    def _stream(self, chunk_size: int) -> Iterator[bytes]:
        """The body, never more than :attr:`max_bytes` of it, nor past the fetch's time budget."""
        limit = self.max_bytes
        if limit is not None:
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit and "content-encoding" not in self.headers:
                raise TransportError("TooLarge", f"the body of {declared} bytes is over the cap of {limit} bytes")
        read = 0
        try:
            for chunk in self._raw.stream(chunk_size):
                read += len(chunk)
                if limit is not None and read > limit:
                    raise TransportError("TooLarge", f"the body is over the cap of {limit} bytes")
                yield chunk
        except self._errors as exc:
            raise self._expired() or _transport_error(exc) from None
        expired = self._expired()
        if expired:  # the watchdog cut the connection: a short body is not the whole body
            raise expired

    def _expired(self) -> TransportError | None:
        fetch = self._fetch
        if fetch is not None and fetch.expired:
            return TransportError("Deadline", f"not finished within the {fetch.allowed:.1f} s allowed for it")
        return None

    def close(self) -> None:
        if not self.is_closed:
            self.is_closed = True
            raw = self._raw
            if not raw.closed:  # the body was not read to its end: the connection cannot be reused
                raw.close()
            raw.release_conn()  # back to the pool (a closed connection reconnects when next used)

    def discard(self) -> None:
        """Read a small unread error body, so the connection goes back to the pool, then close."""
        try:
            length = self.headers.get("Content-Length")
            if self._content is None and length is not None and int(length) <= 64 * 1024:
                self.read()
        except (TransportError, ValueError):
            pass
        self.close()

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}] {redact(self.url)}>"


# ------------------------------------------------------------------------------------------- transport


_POOL_PREFIX = re.compile(r"^\w+\(host=.*?, port=\d+\): ")


def _transport_error(exc: BaseException) -> TransportError:
    """A urllib3 (or socket / http.client) failure as a :class:`TransportError` with a short kind."""
    from urllib3 import exceptions as e

    if isinstance(exc, e.NewConnectionError):  # also NameResolutionError; a subclass of ConnectTimeoutError
        kind = "ConnectError"
    elif isinstance(exc, e.ConnectTimeoutError):
        kind = "ConnectTimeout"
    elif isinstance(exc, e.ReadTimeoutError | TimeoutError):
        kind = "ReadTimeout"
    elif isinstance(exc, e.SSLError | ssl.SSLError):
        kind = "ConnectError"
    elif isinstance(exc, e.ProxyError):
        kind = "ProxyError"
    elif isinstance(exc, e.EmptyPoolError):
        kind = "PoolTimeout"
    elif isinstance(exc, e.DecodeError):
        kind = "DecodingError"
    else:
        kind = "ReadError"
    return TransportError(kind, _POOL_PREFIX.sub("", str(exc)))


class _Pool:
    """What the first request sets up: the urllib3 managers, the retry policy, the read errors."""

    def __init__(
        self,
        *,
        timeout: float,
        verify: ssl.SSLContext,
        max_connections: int,
        user_agent: str,
        retry: IndexRetry,
        deadline: float,
    ) -> None:
        import http.client

        import urllib3
        from urllib3.util.request import ACCEPT_ENCODING

        from .transport import Managers

        self.exceptions = urllib3.exceptions
        #: Errors that sending a request or reading a body may raise outside urllib3's retries.
        self.read_errors = (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException)
        self.headers = {"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING, "Accept": "*/*"}
        self.retry = retry
        #: Seconds from the start of a GET past which it is not retried.
        self.deadline = deadline
        if verify.verify_mode == ssl.CERT_NONE:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._timeout = timeout
        self._timeout_cls = urllib3.Timeout
        self.managers: Managers = Managers(
            {
                "num_pools": 32,
                "maxsize": max_connections,
                "block": True,  # wait for a free connection rather than open ever more
                "ssl_context": verify,
                "cert_reqs": "CERT_NONE" if verify.verify_mode == ssl.CERT_NONE else "CERT_REQUIRED",
                "timeout": urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
                "retries": retry,
            }
        )


    def timeout_until(self, end: float) -> urllib3.Timeout:
        """The per-try socket timeouts, none reaching past ``end``."""
        left = max(0.001, end - time.monotonic())
        return self._timeout_cls(connect=min(self._timeout, 10.0, left), read=min(self._timeout, left))


# -------------------------------------------------------------------------------------------- client


class HttpClient:
    """Thread-safe GETs with bounded retries; shared by every source of a process for connection reuse.

    Credentials are not part of the client: each call passes the :class:`Auth` of its caller's settings.
    Failures raise :class:`IndexUnavailable` naming the redacted ``index`` the request was made for.
    The connection pool is created on the first request.

    :param retries: tries of each GET in all (at least 1).
    :param backoff: backoff factor: about ``backoff * 2**(n-1)`` seconds before the n-th retry (the first
        retry is immediate), plus up to ``backoff`` of jitter.
    :param deadline: seconds after the start of a GET past which it is not retried and no wait reaches
        (default ``(timeout + retry.MAX_RETRY_AFTER) * retries``: every try may time out and wait once).
    :param client_cert: a PEM file with the client certificate and its key (pip's ``client-cert``).
    :param sleep: how the client waits between tries (tests pass a recorder).
    :param allow: an :class:`~.allowlist.AllowList` each redirect's target is checked against before it is
        followed (a refused one is :class:`~venvsmith.core.errors.UrlNotAllowed`); ``None``: not checked. The
        URL a caller asks for is the caller's to check.
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        deadline: float | None = None,
        ca_bundle: str | None = None,
        client_cert: str | None = None,
        verify: ssl.SSLContext | bool | None = None,
        max_connections: int = MAX_CONNECTIONS,
        user_agent: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        allow: AllowList | None = None,
    ) -> None:
        self.tries = max(1, retries)
        self.allow = None if allow is None or allow.unrestricted else allow
        self.backoff = backoff
        self._deadline = deadline
        self._timeout = timeout
        self._ca_bundle = ca_bundle
        self._client_cert = client_cert
        self._verify = verify
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._sleep = sleep
        self._lock = threading.Lock()
        self._transport: _Pool | None = None
        self._closed = False

    def _pool(self) -> _Pool:
        transport = self._transport
        if transport is not None and not self._closed:
            return transport
        with self._lock:
            if self._closed:
                raise RuntimeError("the HTTP client is closed")
            if self._transport is None:
                from .retry import MAX_RETRY_AFTER, index_retry

                deadline = self._deadline
                if deadline is None:
                    deadline = (self._timeout + MAX_RETRY_AFTER) * self.tries
                retry = index_retry(self.tries, backoff=self.backoff, max_redirects=MAX_REDIRECTS, sleeper=self._sleep)
                self._transport = _Pool(
                    timeout=self._timeout,
                    verify=load_context(self._verify, self._ca_bundle, self._client_cert),
                    max_connections=self._max_connections,
                    user_agent=self._user_agent or user_agent(),
                    retry=retry,
                    deadline=deadline,
                )
            return self._transport

    def get(
        self,
        url: str,
        *,
        index: str,
        auth: Auth | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        deadline: float | None = None,
        seconds: float | None = None,
    ) -> Response:
        """GET ``url`` and read the body; any status but 401/403/retryable ones is returned to the caller.

        :param max_bytes: the most body bytes read (decoded); a longer body is :class:`IndexUnavailable`.
        :param deadline: the caller's deadline (``time.monotonic()``): the fetch ends by then, whatever it read.
        :param seconds: the wall-clock time the whole fetch may take (default :data:`~.limits.MAX_FETCH_SECONDS`).
        """
        with self.stream(
            url, index=index, auth=auth, headers=headers, max_bytes=max_bytes, deadline=deadline, seconds=seconds
        ) as response:
            response.read()
            return response

    @contextmanager
    def stream(
        self,
        url: str,
        *,
        index: str,
        auth: Auth | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        deadline: float | None = None,
        seconds: float | None = None,
    ) -> Iterator[Response]:
        """Like :meth:`get` but the body is left unread for the caller to stream (within the same bounds)."""
        now = time.monotonic()
        if seconds is None:  # a client made with a longer retry deadline keeps it
            seconds = max(MAX_FETCH_SECONDS, self._deadline or 0.0)
        end = now + seconds
        by_deadline = deadline is not None and deadline <= end
        if deadline is not None:
            end = min(end, deadline)
        with Fetch(end, allowed=max(0.0, end - now), by_deadline=by_deadline) as fetch:
            with self._open(url, index=index, auth=auth, headers=headers, max_bytes=max_bytes, fetch=fetch) as r:
                yield r

    @contextmanager
    def _open(
        self, url: str, *, index: str, auth: Auth | None, headers: Mapping[str, str] | None, max_bytes: int | None,
        fetch: Fetch,
    ) -> Iterator[Response]:
        send = dict(headers or {})
        if auth is not None:
            send.update(auth.headers(url))
        try:
            pool = self._pool()
        except TrustStoreError as exc:
            raise IndexUnavailable(index, str(exc)) from None
        if time.monotonic() >= fetch.end:
            raise _out_of_time(fetch, index, url)
        response = self._send(pool, url, send, index, fetch)
        response.max_bytes = max_bytes
        from .retry import RETRY_STATUSES

        if response.status_code in RETRY_STATUSES:  # urllib3 gave the last answer back when the tries ran out
            response.discard()
            retries = cast("IndexRetry | None", response._raw.retries)  # the pool's (``new()`` keeps the class)
            tries = retries.failed_tries() + 1 if retries is not None else self.tries
            raise IndexUnavailable(
                index, f"HTTP {response.status_code} fetching {redact(url)}; gave up after {tries} tries"
            )
        if response.status_code in (401, 403):
            response.discard()
            sent = "credentials were rejected" if "Authorization" in send else "no credentials were sent"
            raise IndexUnavailable(
                index, f"authentication failed (HTTP {response.status_code}) for {redact(url)}: {sent}"
            )
        try:
            yield response
        except TransportError as exc:
            if fetch.expired:
                raise _out_of_time(fetch, index, url) from None
            raise IndexUnavailable(index, f"reading {redact(url)} failed: {redact(exc.detail)}") from None
        finally:
            response.close()

    def _send(self, pool: _Pool, url: str, headers: Mapping[str, str], index: str, fetch: Fetch) -> Response:
        """One GET with urllib3's redirects and retries; failures are :class:`IndexUnavailable`."""
        e = pool.exceptions
        send = pool.headers
        if headers:
            given = {key.lower() for key in headers}
            send = {key: value for key, value in send.items() if key.lower() not in given}
            send.update(headers)
        if "@" in url:  # user-info in the URL: HTTP Basic auth unless the caller sent credentials
            url, userinfo = split_userinfo(url)
            if userinfo is not None and not any(key.lower() == "authorization" for key in send):
                send = {**send, "Authorization": Credential("", *userinfo).header()}
        try:
            raw = pool.managers.for_url(url).urlopen(
                "GET",
                url,
                headers=send,
                redirect=True,
                retries=pool.retry.new(deadline=min(time.monotonic() + pool.deadline, fetch.end), allow=self.allow),
                preload_content=False,
                decode_content=True,
                pool_timeout=self._timeout,
                timeout=pool.timeout_until(fetch.end),
            )
        except e.MaxRetryError as exc:
            denied = getattr(exc, "denied", None)
            if denied is not None:  # a redirect to a location the allow-list refuses (not followed)
                raise denied from None
            if isinstance(exc.reason, e.ResponseError):  # redirects exhausted
                raise IndexUnavailable(
                    index, f"cannot fetch {redact(url)}: exceeded maximum allowed redirects ({MAX_REDIRECTS})"
                ) from None
            failure = _transport_error(exc.reason or exc)
            if fetch.expired or time.monotonic() >= fetch.end:
                raise _out_of_time(fetch, index, url) from None
            tries = getattr(exc, "tries", self.tries)
            raise IndexUnavailable(
                index,
                f"{failure.kind} fetching {redact(url)}: {redact(failure.detail) or 'no detail'}; "
                f"gave up after {tries} tries",
            ) from None
        except (e.LocationValueError, ProxyConfigError) as exc:  # a malformed URL, a scheme not http(s)
            raise IndexUnavailable(index, f"cannot fetch {redact(url)}: {redact(str(exc)) or 'not http(s)'}") from None
        except pool.read_errors as exc:  # not retried by urllib3 (e.g. no free pooled connection in time)
            failure = _transport_error(exc)
            raise IndexUnavailable(index, f"{failure.kind} fetching {redact(url)}: {redact(failure.detail)}") from None
        final = url
        history = raw.retries.history if raw.retries is not None else ()
        if history:
            from urllib.parse import urljoin

            for step in history:
                if step.redirect_location:
                    final = urljoin(final, step.redirect_location)
        return Response(raw, final, pool.read_errors, fetch=fetch)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.managers.clear()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _out_of_time(fetch: Fetch, index: str, url: str) -> IndexUnavailable | DeadlineExceeded:
    """A fetch that ran out of time: the caller's deadline passing is DEADLINE_EXCEEDED; the fetch's own limit
    (an index too slow for :data:`~.limits.MAX_FETCH_SECONDS`) is the index's fault, UNAVAILABLE."""
    if fetch.by_deadline:
        return DeadlineExceeded(f"the request's deadline passed while fetching {redact(url)} from {index}")
    return IndexUnavailable(
        index, f"fetching {redact(url)} was not finished within the {fetch.allowed:.1f} s allowed for it"
    )


def unexpected_status(response: Response, index: str) -> IndexUnavailable:
    """The error for a status the caller cannot use."""
    return IndexUnavailable(index, f"HTTP {response.status_code} fetching {redact(str(response.url))}")
