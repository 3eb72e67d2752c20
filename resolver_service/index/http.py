"""One pooled HTTP client for every index request: retries with backoff, auth errors, trust store.

The client is shared by many threads at once (page prefetching, the resolver's look-ahead, concurrent
RPCs). By default it is httpx's synchronous client over a pool of HTTP/1.1 keep-alive connections, which is
thread-safe: a connection serves one request at a time. httpx's synchronous *HTTP/2* connection is not:
streams multiplexed on one connection from several threads race on the shared h2 state, which surfaces as
``KeyError`` / ``RuntimeError: dictionary changed size during iteration`` from inside httpcore
(encode/httpx#3566) -- seen here under the resolver's look-ahead. With ``http2=True`` every request instead
runs on one private asyncio event-loop thread through httpx's asynchronous client, whose HTTP/2 connection
multiplexes any number of concurrent streams safely (one connection per host); callers keep the same
synchronous API either way. Measured against the real index (97 project pages, 13 MB): the HTTP/1.1 pool
is as fast as synchronous HTTP/2, while the event-loop bridge costs more CPU (anyio's TLS over a memory BIO
runs Python code per TLS record) and, next to CPU-bound threads (page parsing, the resolver), 3-4x more
wall time (one loop thread waiting for the GIL on every wake-up), so HTTP/1.1 is the default.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx

from ..errors import IndexUnavailable
from .auth import Auth, redact

T = TypeVar("T")

#: Statuses worth another try: the server is overloaded or briefly broken.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest ``Retry-After`` honoured, in seconds (a longer one is cut to this).
MAX_RETRY_AFTER = 5.0
#: Connections in the pool (all hosts). Enough for the look-ahead; bursts of 30+ new TLS connections to one
#: host were seen to stall some handshakes for 5 s on the way to the real index.
MAX_CONNECTIONS = 24
#: Environment variables naming a CA bundle, in pip's order of precedence.
CA_BUNDLE_ENV = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


def _user_agent() -> str:
    from venvsmith import __version__  # the package's own version: no distribution lookup over sys.path

    return f"venvsmith/{__version__} httpx/{httpx.__version__}"


_user_agent_value: str | None = None


def user_agent() -> str:
    """``venvsmith/<version> httpx/<version>``, built on first use."""
    global _user_agent_value
    if _user_agent_value is None:
        _user_agent_value = _user_agent()
    return _user_agent_value


def __getattr__(name: str) -> Any:  # ``USER_AGENT`` stays available as a module constant, computed lazily
    if name == "USER_AGENT":
        return user_agent()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """TLS trust as pip configures it: an explicit CA bundle, else the system store (``truststore`` if
    installed, else OpenSSL's default paths plus ``certifi``)."""
    path = ca_bundle or next((os.environ[v] for v in CA_BUNDLE_ENV if os.environ.get(v)), None)
    if path:
        if os.path.isdir(path):
            return ssl.create_default_context(capath=path)
        return ssl.create_default_context(cafile=path)
    try:
        import truststore
    except ImportError:
        ctx = ssl.create_default_context()
        try:
            import certifi

            ctx.load_verify_locations(cafile=certifi.where())
        except (ImportError, OSError):
            pass
        return ctx
    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class _TrustStoreError(Exception):
    """The CA bundle could not be loaded (raised when the pool is created, on the first request)."""


class _Loop:
    """(``http2=True``) A private asyncio event loop in a daemon thread; coroutines are submitted from any
    thread."""

    def __init__(self) -> None:
        import asyncio  # only the HTTP/2 mode needs it (a sizeable import)

        self._asyncio = asyncio
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="venvsmith-http", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self._asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (its exception is raised here)."""
        try:
            future = self._asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError:  # the loop was closed meanwhile (the client is closing)
            coro.close()
            raise RuntimeError("the HTTP client is closed") from None
        return future.result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class _BridgedStream(httpx.SyncByteStream):
    """The raw body of a response held by the loop, read chunk by chunk from the calling thread."""

    def __init__(self, loop: _Loop, response: httpx.Response) -> None:
        self._loop = loop
        self._response = response
        self._chunks = response.aiter_raw()

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._loop.call(_next_chunk(self._chunks))
            except StopAsyncIteration:
                return
            yield chunk

    def close(self) -> None:
        if not self._response.is_closed:
            self._loop.call(self._response.aclose())


async def _next_chunk(chunks: Any) -> bytes:
    return await chunks.__anext__()


def _sync_response(response: httpx.Response, stream: httpx.SyncByteStream) -> httpx.Response:
    """A synchronous :class:`httpx.Response` with the status, headers and request of ``response``."""
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=stream,
        request=response.request,
        extensions=response.extensions,
        history=response.history,
        default_encoding=response.default_encoding,
    )


class HttpClient:
    """Thread-safe GETs with bounded retries; shared by every source of a process for connection reuse.

    Credentials are not part of the client: each call passes the :class:`Auth` of its caller's settings.
    Failures raise :class:`IndexUnavailable` naming the redacted ``index`` the request was made for.
    The connection pool (and its event-loop thread) is created on the first request.
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        ca_bundle: str | None = None,
        verify: ssl.SSLContext | bool | None = None,
        max_connections: int = MAX_CONNECTIONS,
        user_agent: str | None = None,
        http2: bool = False,
    ) -> None:
        self.retries = max(1, retries)
        self.http2 = http2
        self.backoff = backoff
        self._timeout = timeout
        self._ca_bundle = ca_bundle
        self._verify = verify
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._lock = threading.Lock()
        self._sync_client: httpx.Client | None = None
        self._loop: _Loop | None = None
        self._async_client: httpx.AsyncClient | None = None
        self._closed = False

    def _options(self) -> dict[str, Any]:
        limits = httpx.Limits(max_connections=self._max_connections, max_keepalive_connections=self._max_connections)
        try:
            verify = ssl_context(self._ca_bundle) if self._verify is None else self._verify
        except OSError as exc:  # ssl.SSLError is one too
            raise _TrustStoreError(f"cannot load the TLS trust store: {exc}") from None
        return {
            "http2": self.http2,
            "follow_redirects": True,
            "max_redirects": 10,
            "timeout": httpx.Timeout(self._timeout, connect=min(self._timeout, 10.0)),
            "limits": limits,
            "verify": verify,
            "headers": {"User-Agent": self._user_agent or user_agent()},
            "trust_env": True,
        }

    def _sync(self) -> httpx.Client:
        with self._lock:
            if self._closed:
                raise RuntimeError("the HTTP client is closed")
            if self._sync_client is None:
                self._sync_client = httpx.Client(**self._options())
            return self._sync_client

    def _async(self) -> tuple[_Loop, httpx.AsyncClient]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the HTTP client is closed")
            if self._loop is None or self._async_client is None:
                self._async_client = httpx.AsyncClient(**self._options())
                self._loop = _Loop()
            return self._loop, self._async_client

    def _send(self, url: str, headers: dict[str, str], whole: bool) -> httpx.Response:
        """Send a GET; the response's body is unread (``whole``: it may already be held in memory)."""
        if not self.http2:
            client = self._sync()
            return client.send(client.build_request("GET", url, headers=headers), stream=True)
        loop, aclient = self._async()
        response, raw = loop.call(_send_async(aclient, url, headers, whole))
        # The caller gets a synchronous response; it decodes the raw body (Content-Encoding) as usual.
        return _sync_response(response, httpx.ByteStream(raw) if raw is not None else _BridgedStream(loop, response))

    def get(
        self, url: str, *, index: str, auth: Auth | None = None, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """GET ``url`` and read the body; any status but 401/403/retryable ones is returned to the caller."""
        with self._open(url, index=index, auth=auth, headers=headers, whole=True) as response:
            response.read()
            return response

    @contextmanager
    def stream(
        self, url: str, *, index: str, auth: Auth | None = None, headers: Mapping[str, str] | None = None
    ) -> Iterator[httpx.Response]:
        """Like :meth:`get` but the body is left unread for the caller to stream."""
        with self._open(url, index=index, auth=auth, headers=headers, whole=False) as response:
            yield response

    @contextmanager
    def _open(
        self, url: str, *, index: str, auth: Auth | None, headers: Mapping[str, str] | None, whole: bool
    ) -> Iterator[httpx.Response]:
        send = dict(headers or {})
        if auth is not None:
            send.update(auth.headers(url))
        reason = ""
        retry_after: float | None = None
        for attempt in range(self.retries):
            if attempt:
                time.sleep(self._delay(attempt, retry_after))
            retry_after = None
            try:
                response = self._send(url, send, whole)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__} fetching {redact(url)}: {redact(str(exc)) or 'no detail'}"
                continue
            except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.TooManyRedirects) as exc:
                raise IndexUnavailable(index, f"cannot fetch {redact(url)}: {redact(str(exc))}") from None
            except _TrustStoreError as exc:
                raise IndexUnavailable(index, str(exc)) from None
            if response.status_code in RETRY_STATUSES:
                reason = f"HTTP {response.status_code} fetching {redact(url)}"
                header = response.headers.get("Retry-After", "").strip()
                retry_after = float(header) if header.isdigit() else None
                _discard(response)
                continue
            if response.status_code in (401, 403):
                _discard(response)
                sent = "credentials were rejected" if "Authorization" in send else "no credentials were sent"
                raise IndexUnavailable(
                    index,
                    f"authentication failed (HTTP {response.status_code}) for {redact(url)}: {sent}",
                )
            try:
                yield response
            except httpx.TransportError as exc:
                raise IndexUnavailable(index, f"reading {redact(url)} failed: {redact(str(exc))}") from None
            finally:
                response.close()
            return
        raise IndexUnavailable(index, f"{reason}; gave up after {self.retries} tries")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff, or the server's ``Retry-After`` (bounded) when it sent one."""
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        return self.backoff * (2 ** (attempt - 1))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sync, loop, aclient = self._sync_client, self._loop, self._async_client
            self._sync_client = self._loop = self._async_client = None
        if sync is not None:
            sync.close()
        if loop is not None and aclient is not None:
            try:
                loop.call(aclient.aclose())
            finally:
                loop.stop()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _send_async(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], whole: bool
) -> tuple[httpx.Response, bytes | None]:
    """Send a GET on the loop; with ``whole`` the raw (still encoded) body is read there too, in one hop
    instead of one per chunk."""
    response = await client.send(client.build_request("GET", url, headers=headers), stream=True)
    if not whole:
        return response, None
    try:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()
    return response, raw


def _discard(response: httpx.Response) -> None:
    """Read a small error body before closing, so the connection goes back to the pool."""
    try:
        length = response.headers.get("Content-Length")
        if length is not None and int(length) <= 64 * 1024:
            response.read()
    except (httpx.HTTPError, ValueError):
        pass
    response.close()


def unexpected_status(response: httpx.Response, index: str) -> IndexUnavailable:
    """The error for a status the caller cannot use."""
    url = redact(str(response.request.url))
    return IndexUnavailable(index, f"HTTP {response.status_code} fetching {url}")
