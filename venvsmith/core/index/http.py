"""One pooled HTTP client for every index request: retries with backoff, auth errors, trust store.

The client is shared by many threads at once (page prefetching, the resolver's look-ahead, concurrent
RPCs). It sends GETs through one of two backends, behind the same :class:`Response`:

* ``urllib3`` (the default): a :class:`urllib3.PoolManager` keeping a pool of HTTP/1.1 keep-alive connections
  per host (a connection serves one request at a time, so it is thread-safe), with urllib3's own retries
  switched off (the loop here retries) and redirects followed by urllib3. Measured against the real index (97
  project pages, 13 MB, from 16 threads) it spends 0.55-0.7x the CPU of httpx's synchronous client (httpx
  parses HTTP/1.1 in pure Python through h11 and several layers of httpcore): about 1.5 ms instead of 2.3 ms
  per GET. On a 2-core machine next to the CPU-bound resolver and page parser that CPU is wall time.
* ``httpx`` (``backend="httpx"``, or ``http2=True``, or ``VENVSMITH_HTTP_BACKEND=httpx``): httpx's synchronous
  client over HTTP/1.1, or with ``http2=True`` httpx's asynchronous client on one private asyncio event-loop
  thread. httpx's synchronous *HTTP/2* connection is not thread-safe: streams multiplexed on one connection
  from several threads race on the shared h2 state, which surfaces as ``KeyError`` / ``RuntimeError:
  dictionary changed size during iteration`` from inside httpcore (encode/httpx#3566) -- seen here under the
  resolver's look-ahead. The asynchronous client's HTTP/2 connection multiplexes any number of concurrent
  streams safely; callers keep the same synchronous API. Measured against the real index (97 project pages,
  13 MB), HTTP/2 brings nothing over the HTTP/1.1 pool, while the event-loop bridge costs more CPU (anyio's
  TLS over a memory BIO runs Python code per TLS record) and, next to CPU-bound threads, 3-4x more wall time
  (one loop thread waiting for the GIL on every wake-up).

Neither library is imported before the first request.
"""

from __future__ import annotations

import os
import re
import ssl
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import IndexUnavailable
from .auth import Auth, Credential, redact, split_userinfo

if TYPE_CHECKING:
    import httpx
    import urllib3

T = TypeVar("T")

#: Statuses worth another try: the server is overloaded or briefly broken.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest ``Retry-After`` honoured, in seconds (a longer one is cut to this).
MAX_RETRY_AFTER = 5.0
#: Connections kept per host (urllib3) or in all (httpx). Enough for the look-ahead; bursts of 30+ new TLS
#: connections to one host were seen to stall some handshakes for 5 s on the way to the real index.
MAX_CONNECTIONS = 24
#: Redirects followed for one request.
MAX_REDIRECTS = 10
#: Environment variables naming a CA bundle, in pip's order of precedence.
CA_BUNDLE_ENV = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
#: The HTTP libraries a client can send through.
BACKENDS = ("urllib3", "httpx")
#: Environment variable choosing the backend of clients that do not name one.
BACKEND_ENV = "VENVSMITH_HTTP_BACKEND"
#: Default chunk size of :meth:`Response.iter_bytes`.
CHUNK = 64 * 1024

_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.I)


def _library_version(library: str) -> str:
    if library == "httpx":
        import httpx

        return httpx.__version__
    import urllib3

    return urllib3.__version__


_user_agents: dict[str, str] = {}


def user_agent(library: str = "urllib3") -> str:
    """``venvsmith/<version> <library>/<version>``, built on first use."""
    value = _user_agents.get(library)
    if value is None:
        from venvsmith import __version__  # the package's own version: no distribution lookup over sys.path

        value = _user_agents[library] = f"venvsmith/{__version__} {library}/{_library_version(library)}"
    return value


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


def _unverified_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _TrustStoreError(Exception):
    """The CA bundle could not be loaded (raised when the pool is created, on the first request)."""


class TransportError(Exception):
    """The connection failed or broke (worth another try); ``kind`` names the failure, e.g. ``ConnectError``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class RequestError(Exception):
    """The request cannot be made at all: a malformed URL, an unsupported scheme, too many redirects."""


# ------------------------------------------------------------------------------------------- responses


class Response:
    """An HTTP response; its body is read on demand (:meth:`read`, :attr:`content`, :meth:`iter_bytes`).

    ``headers`` is a case-insensitive mapping (several values of one header joined by ``", "``); ``url`` is
    the URL that answered, after redirects. Reading the body may raise :class:`TransportError`.
    """

    status_code: int
    headers: Mapping[str, str]
    url: str

    def __init__(self, status_code: int, headers: Mapping[str, str], url: str, content: bytes | None = None):
        self.status_code = status_code
        self.headers = headers
        self.url = url
        self._content = content
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
            self._content = self._read_all()
        return self._content

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        """The (decoded) body in chunks of about ``chunk_size`` bytes."""
        if self._content is not None:
            size = chunk_size or max(1, len(self._content))
            for start in range(0, len(self._content), size):
                yield self._content[start : start + size]
            return
        yield from self._stream(chunk_size or CHUNK)

    def close(self) -> None:
        if not self.is_closed:
            self.is_closed = True
            self._close()

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

    # Backends override these.
    def _read_all(self) -> bytes:
        return b""

    def _stream(self, chunk_size: int) -> Iterator[bytes]:
        yield from ()

    def _close(self) -> None:
        pass


class _Urllib3Response(Response):
    def __init__(self, raw: urllib3.BaseHTTPResponse, url: str, preloaded: bool, errors: tuple) -> None:
        super().__init__(raw.status, raw.headers, url, raw.data if preloaded else None)
        self._raw = raw
        self._errors = errors

    def _read_all(self) -> bytes:
        try:
            return self._raw.read()
        except self._errors as exc:
            raise _urllib3_transport_error(exc) from None

    def _stream(self, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from self._raw.stream(chunk_size)
        except self._errors as exc:
            raise _urllib3_transport_error(exc) from None

    def _close(self) -> None:
        raw = self._raw
        if not raw.closed:  # the body was not read to its end: the connection cannot be reused
            raw.close()
        raw.release_conn()  # back to the pool (a closed connection reconnects when next used)


class _HttpxResponse(Response):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code, response.headers, str(response.url))
        self._response = response

    def _read_all(self) -> bytes:
        import httpx

        try:
            return self._response.read()
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise TransportError(type(exc).__name__, str(exc)) from None

    def _stream(self, chunk_size: int) -> Iterator[bytes]:
        import httpx

        try:
            yield from self._response.iter_bytes(chunk_size)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise TransportError(type(exc).__name__, str(exc)) from None

    def _close(self) -> None:
        self._response.close()


# ------------------------------------------------------------------------------------------- urllib3


_POOL_PREFIX = re.compile(r"^\w+\(host=.*?, port=\d+\): ")


def _urllib3_transport_error(exc: BaseException) -> TransportError:
    """A urllib3 (or socket / http.client) failure as a :class:`TransportError` named as httpx would."""
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


def _has_proxy_environment() -> bool:
    return any(key.lower().endswith("_proxy") and value for key, value in os.environ.items())


class _Urllib3Backend:
    """GETs through urllib3 pools: keep-alive connections per host, redirects followed, no retries."""

    def __init__(self, *, timeout: float, verify: ssl.SSLContext, max_connections: int, user_agent: str) -> None:
        import http.client

        import urllib3
        from urllib3 import exceptions
        from urllib3.util.request import ACCEPT_ENCODING

        self._exceptions = exceptions
        #: Errors that reading a body may raise.
        self._read_errors = (exceptions.HTTPError, OSError, http.client.HTTPException)
        self._headers = {"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING, "Accept": "*/*"}
        self._retries = urllib3.Retry(
            total=None,
            connect=0,
            read=0,
            other=0,
            status=0,
            redirect=MAX_REDIRECTS,
            raise_on_redirect=True,
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        self._pool_timeout = timeout
        if verify.verify_mode == ssl.CERT_NONE:
            urllib3.disable_warnings(exceptions.InsecureRequestWarning)
        self._options: dict[str, Any] = {
            "num_pools": 32,
            "maxsize": max_connections,
            "block": True,  # wait for a free connection rather than open ever more
            "ssl_context": verify,
            "cert_reqs": "CERT_NONE" if verify.verify_mode == ssl.CERT_NONE else "CERT_REQUIRED",
            "timeout": urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
            "retries": self._retries,
        }
        self._direct = urllib3.PoolManager(**self._options)
        self._proxies: dict[str, str] = {}
        if _has_proxy_environment():  # as httpx's ``trust_env``: HTTP(S)_PROXY, ALL_PROXY, NO_PROXY
            import urllib.request

            self._proxies = urllib.request.getproxies_environment()
        self._proxy_managers: dict[str, urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def _manager(self, url: str) -> urllib3.PoolManager:
        if not self._proxies:
            return self._direct
        import urllib.request
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme.lower()) or self._proxies.get("all")
        if not proxy or urllib.request.proxy_bypass_environment(parts.hostname or "", self._proxies):
            return self._direct
        with self._lock:
            manager = self._proxy_managers.get(proxy)
            if manager is None:
                if proxy.lower().startswith("socks"):
                    try:
                        from urllib3.contrib.socks import SOCKSProxyManager
                    except ImportError:
                        raise RequestError(f"the SOCKS proxy {redact(proxy)} needs PySocks installed") from None
                    manager = SOCKSProxyManager(proxy, **self._options)
                else:
                    import urllib3

                    manager = urllib3.ProxyManager(proxy, **self._options)
                self._proxy_managers[proxy] = manager
            return manager

    def send(self, url: str, headers: Mapping[str, str], whole: bool) -> Response:
        e = self._exceptions
        send = self._headers
        if headers:
            given = {key.lower() for key in headers}
            send = {key: value for key, value in send.items() if key.lower() not in given}
            send.update(headers)
        if "@" in url:  # user-info in the URL: HTTP Basic auth unless the caller sent credentials (as httpx does)
            url, userinfo = split_userinfo(url)
            if userinfo is not None and not any(key.lower() == "authorization" for key in send):
                send = {**send, "Authorization": Credential("", *userinfo).header()}
        try:
            raw = self._manager(url).urlopen(
                "GET",
                url,
                headers=send,
                redirect=True,
                retries=self._retries,
                preload_content=whole,
                decode_content=True,
                pool_timeout=self._pool_timeout,
            )
        except e.MaxRetryError as exc:
            if isinstance(exc.reason, e.ResponseError):  # redirects exhausted
                raise RequestError(f"Exceeded maximum allowed redirects ({MAX_REDIRECTS})") from None
            raise _urllib3_transport_error(exc.reason or exc) from None
        except e.LocationValueError as exc:  # a malformed URL or a scheme that is not http(s)
            raise RequestError(str(exc) or f"not an http(s) URL: {url}") from None
        except self._read_errors as exc:
            raise _urllib3_transport_error(exc) from None
        final = url
        history = raw.retries.history if raw.retries is not None else ()
        if history:
            from urllib.parse import urljoin

            for step in history:
                if step.redirect_location:
                    final = urljoin(final, step.redirect_location)
        return _Urllib3Response(raw, final, whole, self._read_errors)

    def close(self) -> None:
        with self._lock:
            managers = [self._direct, *self._proxy_managers.values()]
            self._proxy_managers.clear()
        for manager in managers:
            manager.clear()


# --------------------------------------------------------------------------------------------- httpx


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


def _bridged_stream(loop: _Loop, response: httpx.Response) -> httpx.SyncByteStream:
    """The raw body of a response held by the loop, read chunk by chunk from the calling thread."""
    import httpx

    class BridgedStream(httpx.SyncByteStream):
        def __init__(self) -> None:
            self._chunks = response.aiter_raw()

        def __iter__(self) -> Iterator[bytes]:
            while True:
                try:
                    chunk = loop.call(_next_chunk(self._chunks))
                except StopAsyncIteration:
                    return
                yield chunk

        def close(self) -> None:
            if not response.is_closed:
                loop.call(response.aclose())

    return BridgedStream()


async def _next_chunk(chunks: Any) -> bytes:
    return await chunks.__anext__()


async def _send_async(
    client: httpx.AsyncClient, url: str, headers: Mapping[str, str], whole: bool
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


class _HttpxBackend:
    """GETs through httpx: its synchronous client (HTTP/1.1), or its asynchronous one on a private event loop
    (``http2``)."""

    def __init__(
        self, *, timeout: float, verify: ssl.SSLContext, max_connections: int, user_agent: str, http2: bool
    ) -> None:
        import httpx

        self._httpx = httpx
        self.http2 = http2
        options = {
            "http2": http2,
            "follow_redirects": True,
            "max_redirects": MAX_REDIRECTS,
            "timeout": httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            "limits": httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            "verify": verify,
            "headers": {"User-Agent": user_agent},
            "trust_env": True,
        }
        self._sync: httpx.Client | None = None
        self._loop: _Loop | None = None
        self._async: httpx.AsyncClient | None = None
        if http2:
            self._async = httpx.AsyncClient(**options)
            self._loop = _Loop()
        else:
            self._sync = httpx.Client(**options)

    def send(self, url: str, headers: Mapping[str, str], whole: bool) -> Response:
        httpx = self._httpx
        try:
            if self._sync is not None:
                client = self._sync
                response = client.send(client.build_request("GET", url, headers=headers), stream=True)
            else:
                assert self._loop is not None and self._async is not None
                loop = self._loop
                sent, raw = loop.call(_send_async(self._async, url, headers, whole))
                # The caller gets a synchronous response; it decodes the raw body (Content-Encoding) as usual.
                response = httpx.Response(
                    sent.status_code,
                    headers=sent.headers,
                    stream=httpx.ByteStream(raw) if raw is not None else _bridged_stream(loop, sent),
                    request=sent.request,
                    extensions=sent.extensions,
                    history=sent.history,
                    default_encoding=sent.default_encoding,
                )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.TooManyRedirects) as exc:
            raise RequestError(str(exc)) from None  # (UnsupportedProtocol is a TransportError too)
        except httpx.TransportError as exc:
            raise TransportError(type(exc).__name__, str(exc)) from None
        return _HttpxResponse(response)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
        if self._loop is not None and self._async is not None:
            try:
                self._loop.call(self._async.aclose())
            finally:
                self._loop.stop()


# -------------------------------------------------------------------------------------------- client


class HttpClient:
    """Thread-safe GETs with bounded retries; shared by every source of a process for connection reuse.

    Credentials are not part of the client: each call passes the :class:`Auth` of its caller's settings.
    Failures raise :class:`IndexUnavailable` naming the redacted ``index`` the request was made for.
    The connection pool is created on the first request.

    :param backend: ``urllib3`` or ``httpx`` (default: ``$VENVSMITH_HTTP_BACKEND``, else ``urllib3``;
        ``http2=True`` needs ``httpx``).
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
        backend: str | None = None,
    ) -> None:
        backend = backend or ("httpx" if http2 else os.environ.get(BACKEND_ENV) or "urllib3")
        if backend not in BACKENDS:
            raise ValueError(f"unknown HTTP backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        if http2 and backend != "httpx":
            raise ValueError("HTTP/2 needs the httpx backend")
        self.backend = backend
        self.retries = max(1, retries)
        self.http2 = http2
        self.backoff = backoff
        self._timeout = timeout
        self._ca_bundle = ca_bundle
        self._verify = verify
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._lock = threading.Lock()
        self._transport: _Urllib3Backend | _HttpxBackend | None = None
        self._closed = False

    def _verify_context(self) -> ssl.SSLContext:
        if isinstance(self._verify, ssl.SSLContext):
            return self._verify
        if self._verify is False:
            return _unverified_context()
        try:
            return ssl_context(self._ca_bundle)
        except OSError as exc:  # ssl.SSLError is one too
            raise _TrustStoreError(f"cannot load the TLS trust store: {exc}") from None

    def _backend(self) -> _Urllib3Backend | _HttpxBackend:
        transport = self._transport
        if transport is not None and not self._closed:
            return transport
        with self._lock:
            if self._closed:
                raise RuntimeError("the HTTP client is closed")
            if self._transport is None:
                options = {
                    "timeout": self._timeout,
                    "verify": self._verify_context(),
                    "max_connections": self._max_connections,
                    "user_agent": self._user_agent or user_agent(self.backend),
                }
                if self.backend == "httpx":
                    self._transport = _HttpxBackend(**options, http2=self.http2)
                else:
                    self._transport = _Urllib3Backend(**options)
            return self._transport

    def get(
        self, url: str, *, index: str, auth: Auth | None = None, headers: Mapping[str, str] | None = None
    ) -> Response:
        """GET ``url`` and read the body; any status but 401/403/retryable ones is returned to the caller."""
        with self._open(url, index=index, auth=auth, headers=headers, whole=True) as response:
            response.read()
            return response

    @contextmanager
    def stream(
        self, url: str, *, index: str, auth: Auth | None = None, headers: Mapping[str, str] | None = None
    ) -> Iterator[Response]:
        """Like :meth:`get` but the body is left unread for the caller to stream."""
        with self._open(url, index=index, auth=auth, headers=headers, whole=False) as response:
            yield response

    @contextmanager
    def _open(
        self, url: str, *, index: str, auth: Auth | None, headers: Mapping[str, str] | None, whole: bool
    ) -> Iterator[Response]:
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
                response = self._backend().send(url, send, whole)
            except TransportError as exc:
                reason = f"{exc.kind} fetching {redact(url)}: {redact(exc.detail) or 'no detail'}"
                continue
            except RequestError as exc:
                raise IndexUnavailable(index, f"cannot fetch {redact(url)}: {redact(str(exc))}") from None
            except _TrustStoreError as exc:
                raise IndexUnavailable(index, str(exc)) from None
            if response.status_code in RETRY_STATUSES:
                reason = f"HTTP {response.status_code} fetching {redact(url)}"
                header = response.headers.get("Retry-After", "").strip()
                retry_after = float(header) if header.isdigit() else None
                response.discard()
                continue
            if response.status_code in (401, 403):
                response.discard()
                sent = "credentials were rejected" if "Authorization" in send else "no credentials were sent"
                raise IndexUnavailable(
                    index,
                    f"authentication failed (HTTP {response.status_code}) for {redact(url)}: {sent}",
                )
            try:
                yield response
            except TransportError as exc:
                raise IndexUnavailable(index, f"reading {redact(url)} failed: {redact(exc.detail)}") from None
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
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unexpected_status(response: Response, index: str) -> IndexUnavailable:
    """The error for a status the caller cannot use."""
    return IndexUnavailable(index, f"HTTP {response.status_code} fetching {redact(str(response.url))}")
