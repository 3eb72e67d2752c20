"""A client of the OCI distribution API (spec 1.1) for the blobs and manifests of ``--store oci://...``.

Blobs are addressed by the same ``sha256:`` digests as our ArtifactRefs. ``HEAD`` checks existence, pushes are
monolithic (one ``POST`` + ``PUT ?digest=``) up to :data:`CHUNK_BYTES` and chunked above (``PATCH`` with
``Content-Range``, then ``PUT ?digest=``), pulls are verified against the digest while they stream. Auth: basic
credentials from the URL's userinfo, sent on a ``Basic`` challenge or exchanged for a token on a ``Bearer
realm=...,service=...,scope=...`` challenge (tokens cached per scope). HTTPS with the system trust store or a CA
file (given a CA file, HTTPS also to a loopback host); plain HTTP only for loopback hosts. Every request has a
connect and read timeout; manifests and token answers are bounded in size. A connection failure or a 5xx is
:class:`~builder_service.errors.RegistryUnavailable`.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode, urljoin, urlsplit

from ..digest import CHUNK_SIZE, Digest, Hasher
from ..errors import BlobNotFound, DigestMismatch, RegistryError, RegistryUnavailable

if TYPE_CHECKING:
    import urllib3

__all__ = ["CHUNK_BYTES", "MAX_MANIFEST_BYTES", "RegistryClient", "RegistryError", "RegistryURL"]

#: Blobs up to this size are pushed in one request; larger ones in chunks of this size.
CHUNK_BYTES = 16 << 20
#: Largest manifest (or token answer) read; the spec recommends registries accept at least 4 MiB.
MAX_MANIFEST_BYTES = 4 << 20
#: Seconds to connect, and between bytes of an answer.
CONNECT_SECONDS = 5.0
READ_SECONDS = 60.0

_REPO = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class RegistryURL:
    """``oci://[USER:PASSWORD@]HOST[:PORT]/REPO-PREFIX`` split up; ``str()`` has no credentials."""

    host: str
    prefix: str
    username: str = ""
    password: str = ""

    @classmethod
    def parse(cls, url: str) -> RegistryURL:
        parts = urlsplit(url)
        if parts.scheme != "oci" or not parts.hostname:
            raise ValueError(f"not an oci://HOST:PORT/REPO-PREFIX store URL: {redact(url)}")
        prefix = parts.path.strip("/")
        if not _REPO.fullmatch(prefix):
            raise ValueError(f"invalid repository prefix {prefix!r} (lowercase path components) in {redact(url)}")
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        if ":" in parts.hostname:  # IPv6 literal
            host = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
        return cls(host, prefix, unquote(parts.username or ""), unquote(parts.password or ""))

    @property
    def loopback(self) -> bool:
        name = self.host.rsplit(":", 1)[0].strip("[]") if not self.host.endswith("]") else self.host.strip("[]")
        if name == "localhost":
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    @property
    def base(self) -> str:
        """``http://`` for loopback hosts, ``https://`` for every other."""
        return self.base_for(tls=not self.loopback)

    def base_for(self, tls: bool) -> str:
        return f"{'https' if tls else 'http'}://{self.host}"

    def __str__(self) -> str:
        return f"{self.host}/{self.prefix}"


def redact(url: str) -> str:
    """``url`` without its userinfo."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


class RegistryClient:
    """Blobs and manifests of one registry; thread-safe (one urllib3 pool, tokens under a lock)."""

    def __init__(self, url: RegistryURL | str, *, ca_file: str | Path | None = None,
                 chunk_bytes: int = CHUNK_BYTES, read_seconds: float = READ_SECONDS) -> None:
        import urllib3

        self.url = RegistryURL.parse(url) if isinstance(url, str) else url
        #: ``https://HOST`` (``http://`` only for a loopback host without a CA file: a CA file means TLS).
        self.base = self.url.base_for(tls=ca_file is not None or not self.url.loopback)
        self.chunk_bytes = chunk_bytes
        timeout = urllib3.Timeout(connect=CONNECT_SECONDS, read=read_seconds)
        kwargs: dict[str, Any] = {"timeout": timeout, "retries": False, "maxsize": 8}
        if ca_file is not None:
            kwargs["ca_certs"] = str(ca_file)
        self._http = urllib3.PoolManager(**kwargs)
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self._basic = False  # a Basic challenge was seen: send credentials up front

    def repository(self, name: str) -> str:
        """``PREFIX/name``."""
        return f"{self.url.prefix}/{name}"

    # -- blobs ---------------------------------------------------------------------------------------------------

    def has_blob(self, repo: str, digest: Digest) -> bool:
        """``HEAD /v2/<repo>/blobs/<digest>``: True on 200 with the right size."""
        r = self._request("HEAD", repo, f"/v2/{repo}/blobs/sha256:{digest.hash}", pull=True)
        if r.status == 404:
            return False
        self._check(r, "HEAD blob")
        length = r.headers.get("Content-Length")
        return length is None or int(length) == digest.size_bytes

    def pull_blob(self, repo: str, digest: Digest, sink: Callable[[bytes], object]) -> None:
        """Stream the blob into ``sink``, verifying size and digest; :class:`BlobNotFound` when the registry lacks
        it, :class:`DigestMismatch` when it serves other bytes (the sink has then seen them: write into a verified
        writer that discards on error)."""
        r = self._request("GET", repo, f"/v2/{repo}/blobs/sha256:{digest.hash}", pull=True, stream=True)
        try:
            if r.status == 404:
                raise BlobNotFound(digest)
            self._check(r, "GET blob")
            hasher = Hasher()
            try:
                for chunk in r.stream(CHUNK_SIZE):
                    hasher.update(chunk)
                    if hasher.size > digest.size_bytes:
                        raise DigestMismatch(f"{self.url}/{repo}", digest, None)
                    sink(chunk)
            except _transport_errors() as e:
                raise RegistryUnavailable(str(self.url), f"GET blob: {e}") from e
            actual = hasher.digest()
            if actual != digest:
                raise DigestMismatch(f"{self.url}/{repo}", digest, actual)
        finally:
            r.release_conn()

    def push_blob(self, repo: str, digest: Digest, path: Path, *, mount_from: str = "") -> bool:
        """Upload the file at ``path`` (whose digest is ``digest``) unless the registry has it; mounted from
        ``mount_from`` when it has it there. Returns True when bytes were sent."""
        if self.has_blob(repo, digest):
            return False
        query = {"mount": f"sha256:{digest.hash}", "from": mount_from} if mount_from else {}
        r = self._request("POST", repo, f"/v2/{repo}/blobs/uploads/", query=query, body=b"")
        if r.status == 201:  # mounted
            return False
        self._check(r, "POST upload", expect=(202,))
        location = self._location(r)
        with open(path, "rb") as f:
            if digest.size_bytes <= self.chunk_bytes:
                self._finish(repo, location, digest, f.read(), "monolithic PUT")
                return True
            offset = 0
            while chunk := f.read(self.chunk_bytes):
                headers = {"Content-Type": "application/octet-stream",
                           "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
                r = self._request("PATCH", repo, location, body=chunk, headers=headers)
                self._check(r, "PATCH chunk", expect=(202,))
                location = self._location(r)
                offset += len(chunk)
        self._finish(repo, location, digest, b"", "final PUT")
        return True

    def mount_blob(self, repo: str, digest: Digest, from_repo: str) -> bool:
        """Make ``repo`` have the blob by mounting it from ``from_repo`` (no bytes sent); True when ``repo`` has it
        now, False when the registry would not mount it (the upload it opened instead is left to expire)."""
        if self.has_blob(repo, digest):
            return True
        query = {"mount": f"sha256:{digest.hash}", "from": from_repo}
        r = self._request("POST", repo, f"/v2/{repo}/blobs/uploads/", query=query, body=b"")
        if r.status == 201:
            return True
        self._check(r, "POST mount", expect=(202,))
        return False

    def push_bytes(self, repo: str, data: bytes) -> Digest:
        """Upload an in-memory blob (a config, a small document) monolithically."""
        digest = Digest.of_bytes(data)
        if not self.has_blob(repo, digest):
            r = self._request("POST", repo, f"/v2/{repo}/blobs/uploads/", body=b"")
            self._check(r, "POST upload", expect=(202,))
            self._finish(repo, self._location(r), digest, data, "monolithic PUT")
        return digest

    def _finish(self, repo: str, location: str, digest: Digest, body: bytes, what: str) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        r = self._request("PUT", repo, location, query={"digest": f"sha256:{digest.hash}"}, body=body,
                          headers=headers)
        self._check(r, what, expect=(201,))

    # -- manifests -----------------------------------------------------------------------------------------------

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> Digest:
        """``PUT /v2/<repo>/manifests/<reference>`` (a tag or a digest); returns the manifest's digest."""
        if not (_TAG.fullmatch(reference) or reference.startswith("sha256:")):
            raise ValueError(f"invalid manifest reference {reference!r}")
        r = self._request("PUT", repo, f"/v2/{repo}/manifests/{reference}", body=body,
                          headers={"Content-Type": media_type})
        self._check(r, "PUT manifest", expect=(201,))
        return Digest.of_bytes(body)

    def get_manifest(self, repo: str, reference: str, accept: tuple[str, ...]) -> tuple[bytes, str] | None:
        """The manifest's bytes and media type, or None when the registry has no such tag/digest."""
        r = self._request("GET", repo, f"/v2/{repo}/manifests/{reference}", pull=True, stream=True,
                          headers={"Accept": ", ".join(accept)})
        try:
            if r.status == 404:
                return None
            self._check(r, "GET manifest")
            body = _bounded(r, MAX_MANIFEST_BYTES, str(self.url), f"manifest of {repo}")
            if reference.startswith("sha256:") and Digest.of_bytes(body).hash != reference[7:]:
                raise DigestMismatch(f"{self.url}/{repo}:{reference}", Digest(reference[7:], len(body)),
                                     Digest.of_bytes(body))
            return body, r.headers.get("Content-Type", "")
        finally:
            r.release_conn()

    def tags(self, repo: str, prefix: str, *, max_pages: int = 64) -> list[str]:
        """The repository's tags that start with ``prefix`` (``GET /v2/<repo>/tags/list``, asked to start after
        ``prefix``'s predecessor and following ``Link`` pages; filtered here, since registries differ in whether
        they honour ``last``). A missing repository has none."""
        path = f"/v2/{repo}/tags/list?" + urlencode({"last": prefix[:-1]} if prefix else {})
        found: list[str] = []
        for _ in range(max_pages):
            r = self._request("GET", repo, path, pull=True, stream=True)
            try:
                if r.status == 404:
                    return found
                self._check(r, "GET tags")
                doc = json.loads(_bounded(r, MAX_MANIFEST_BYTES, str(self.url), f"tags of {repo}"))
                link = r.headers.get("Link", "")
            finally:
                r.release_conn()
            found += [t for t in (doc.get("tags") or []) if isinstance(t, str) and t.startswith(prefix)]
            match = re.match(r"\s*<([^>]+)>\s*;\s*rel=\"?next\"?", link)
            if not match:
                return found
            parts = urlsplit(match.group(1))
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        return found

    # -- HTTP and auth -------------------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: raises :class:`RegistryUnavailable` when the registry does not answer."""
        r = self._request("GET", "", "/v2/")
        if r.status not in (200, 401):
            self._check(r, "GET /v2/")

    def _request(self, method: str, repo: str, path: str, *, query: Mapping[str, str] | None = None,
                 body: bytes | None = None, headers: Mapping[str, str] | None = None, pull: bool = False,
                 stream: bool = False) -> urllib3.BaseHTTPResponse:
        url = urljoin(self.base + "/", path)
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        scope = f"repository:{repo}:{'pull' if pull else 'pull,push'}" if repo else ""
        for attempt in range(2):
            sent = dict(headers or {})
            auth = self._authorization(scope)
            if auth:
                sent["Authorization"] = auth
            try:
                r = self._http.request(method, url, body=body, headers=sent, preload_content=not stream,
                                       redirect=method in ("GET", "HEAD"))
            except _transport_errors() as e:
                raise RegistryUnavailable(str(self.url), f"{method} {path.split('?')[0]}: {e}") from e
            if r.status != 401 or attempt:
                return r
            challenge = r.headers.get("WWW-Authenticate", "")
            r.drain_conn()
            r.release_conn()
            if not self._answer(challenge, scope):
                return r
        raise AssertionError("unreachable")

    def _authorization(self, scope: str) -> str:
        with self._lock:
            token = self._tokens.get(scope)
        if token:
            return f"Bearer {token}"
        if self._basic and self.url.username:
            return "Basic " + _basic(self.url.username, self.url.password)
        return ""

    def _answer(self, challenge: str, scope: str) -> bool:
        """Prepare credentials for a 401's challenge; False when there is nothing more to try."""
        kind, _, params_text = challenge.partition(" ")
        if kind.lower() == "basic":
            if not self.url.username or self._basic:
                return False
            self._basic = True
            return True
        if kind.lower() != "bearer":
            return False
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        realm = params.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            return False
        if realm.startswith("http://") and not RegistryURL(urlsplit(realm).netloc or "x", "x").loopback:
            raise RegistryError(str(self.url), f"refusing a token realm over plain HTTP: {realm}")
        query = {"service": params.get("service", "")}
        if params.get("scope") or scope:
            query["scope"] = params.get("scope") or scope
        headers = {}
        if self.url.username:
            headers["Authorization"] = "Basic " + _basic(self.url.username, self.url.password)
        try:
            r = self._http.request("GET", realm + ("&" if "?" in realm else "?") + urlencode(query),
                                   headers=headers, preload_content=False)
        except _transport_errors() as e:
            raise RegistryUnavailable(str(self.url), f"token service {realm}: {e}") from e
        try:
            if r.status != 200:
                return False
            answer = json.loads(_bounded(r, MAX_MANIFEST_BYTES, str(self.url), "token answer"))
        finally:
            r.release_conn()
        token = answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            return False
        with self._lock:
            self._tokens[scope] = token
        return True

    def _location(self, r: urllib3.BaseHTTPResponse) -> str:
        location = r.headers.get("Location", "")
        if not location:
            raise RegistryError(str(self.url), "upload answer without a Location")
        parts = urlsplit(urljoin(self.base + "/", location))
        if f"{parts.scheme}://{parts.netloc}" != self.base:
            raise RegistryError(str(self.url), f"upload location on another host: {parts.netloc}")
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def _check(self, r: urllib3.BaseHTTPResponse, what: str, expect: tuple[int, ...] = (200,)) -> None:
        if r.status in expect:
            return
        text = r.data[:500].decode("utf-8", "replace")
        if r.status >= 500 or r.status == 429:
            raise RegistryUnavailable(str(self.url), f"{what}: HTTP {r.status} {text}".strip())
        raise RegistryError(str(self.url), f"{what}: HTTP {r.status} {text}".strip())

    def close(self) -> None:
        self._http.clear()


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _bounded(r: urllib3.BaseHTTPResponse, limit: int, registry: str, what: str) -> bytes:
    out = bytearray()
    for chunk in r.stream(64 * 1024):
        out += chunk
        if len(out) > limit:
            raise RegistryError(registry, f"{what} larger than {limit} bytes")
    return bytes(out)


def _transport_errors() -> tuple[type[BaseException], ...]:
    import urllib3

    return (urllib3.exceptions.HTTPError, OSError)

