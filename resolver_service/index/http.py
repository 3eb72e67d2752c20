"""One pooled HTTP/2 client for every index request: retries with backoff, auth errors, trust store."""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

import httpx

from ..errors import IndexUnavailable
from .auth import Auth, redact

#: Statuses worth another try: the server is overloaded or briefly broken.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest ``Retry-After`` honoured, in seconds (a longer one is cut to this).
MAX_RETRY_AFTER = 5.0
#: Environment variables naming a CA bundle, in pip's order of precedence.
CA_BUNDLE_ENV = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


def _user_agent() -> str:
    try:
        own = version("venvsmith")
    except PackageNotFoundError:
        own = "0"
    return f"venvsmith/{own} httpx/{httpx.__version__}"


USER_AGENT = _user_agent()


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


class HttpClient:
    """Thread-safe GETs with bounded retries; shared by every source of a process for connection reuse.

    Credentials are not part of the client: each call passes the :class:`Auth` of its caller's settings.
    Failures raise :class:`IndexUnavailable` naming the redacted ``index`` the request was made for.
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        ca_bundle: str | None = None,
        verify: ssl.SSLContext | bool | None = None,
        max_connections: int = 64,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.retries = max(1, retries)
        self.backoff = backoff
        self._client = httpx.Client(
            http2=True,
            follow_redirects=True,
            max_redirects=10,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            verify=ssl_context(ca_bundle) if verify is None else verify,
            headers={"User-Agent": user_agent},
            trust_env=True,
        )

    def get(
        self, url: str, *, index: str, auth: Auth | None = None, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """GET ``url`` and read the body; any status but 401/403/retryable ones is returned to the caller."""
        with self.stream(url, index=index, auth=auth, headers=headers) as response:
            response.read()
            return response

    @contextmanager
    def stream(
        self, url: str, *, index: str, auth: Auth | None = None, headers: Mapping[str, str] | None = None
    ) -> Iterator[httpx.Response]:
        """Like :meth:`get` but the body is left unread for the caller to stream."""
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
                request = self._client.build_request("GET", url, headers=send)
                response = self._client.send(request, stream=True)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__} fetching {redact(url)}: {redact(str(exc)) or 'no detail'}"
                continue
            except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.TooManyRedirects) as exc:
                raise IndexUnavailable(index, f"cannot fetch {redact(url)}: {redact(str(exc))}") from None
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
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
