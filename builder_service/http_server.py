"""A plain HTTP face of the store: blobs by digest, and each build's wheels as a simple index.

* ``GET /blobs/<sha256>/<size>/<filename>`` — one blob, verified while sent (Range requests honoured); the file
  name is cosmetic. ``GET /blobs/<sha256>/<size>/<wheel filename>.metadata`` — that wheel's METADATA (PEP 658).
* ``GET /wheelhouse/<lock key>/simple/[<project>/]`` — a build's wheels as PEP 503 HTML or PEP 691 JSON (by the
  ``Accept`` header), with core-metadata hashes (PEP 714), sizes and versions (PEP 700); a page asked for
  without its trailing slash or by a non-normalized name is redirected (301) to its canonical URL.

Links (and redirects) are under the operator's public URL (``serve builder --public-url``) when it is set, else
root-relative. So ``pip install --index-url`` / ``uv pip install`` resolve from a build's wheels without
downloading them.

With tokens (``serve builder --auth-tokens FILE``) every path but ``/`` and ``/healthz`` needs a token of role
``resolve`` or above, as ``Authorization: Bearer TOKEN`` or as HTTP basic auth with the token as the password
(any user name; or the token as the user name and no password), so pip and uv can use
``http://ci:TOKEN@HOST:PORT/wheelhouse/...``. Without one: 401 with ``WWW-Authenticate: Basic``; with an unknown
token: 401; with a role below what the path needs: 403. With ``serve builder --tls-cert/--tls-key`` the endpoint
speaks HTTPS with the same certificate (``--tls-client-ca``: clients must present a certificate).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from packaging.utils import canonicalize_name, parse_wheel_filename

from venvsmith.core import observe
from venvsmith.core.auth import Role, TokenStore, bearer_token
from venvsmith.core.errors import ServiceError
from venvsmith.core.public_url import advertised_host
from venvsmith.core.tls import ServerTls

from .action_cache import OutputRef
from .digest import Digest
from .engine import BuildEngine
from .errors import DigestMismatch, InvalidDigest, RegistryUnavailable, status_of
from .store.reader import verified_chunks
from .wheel_metadata import core_metadata
from .wheelhouse import HouseWheel, negotiate, project_json, project_page, root_json, root_page

log = logging.getLogger(__name__)

_BLOB = re.compile(r"^/blobs/([0-9a-f]{64})/(\d{1,19})(?:/([^/]+))?$")
_HOUSE = re.compile(r"^/wheelhouse/([0-9a-f]{64})/simple(/?)$")
_SHORT_KEY = re.compile(r"^/wheelhouse/[0-9a-f]{1,63}(/|$)")
_PROJECT = re.compile(r"^/wheelhouse/([0-9a-f]{64})/simple/([A-Za-z0-9._-]{1,200})(/?)$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_METADATA_SUFFIX = ".whl.metadata"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's signature
        pass

    def log_request(self, code="-", size="-") -> None:
        log.debug("%s %s %s", self.command, self.path, code)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _token(self) -> str | None:
        """The request's token: ``Authorization: Bearer TOKEN`` or basic auth's password (else its user)."""
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return bearer_token({"authorization": header})
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or user or None

    def _authorized(self, path: str, head: bool) -> bool:
        tokens = self.server.tokens
        if tokens is None:
            return True
        try:
            tokens.authorize(f"HTTP {self.command} {path[:200]}", self._token(), Role.RESOLVE)
        except ServiceError as exc:
            denied = exc.status == "PERMISSION_DENIED"
            body = f"{exc.message}\n".encode()
            self.send_response(HTTPStatus.FORBIDDEN if denied else HTTPStatus.UNAUTHORIZED)
            if not denied:
                self.send_header("WWW-Authenticate", 'Basic realm="venvsmith", charset="UTF-8"')
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return False
        return True

    def _serve(self, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/healthz", "/"):
            sandbox = self.server.engine.workspace.sandbox.name
            return self._send(HTTPStatus.OK, f"ok\nbuild sandbox: {sandbox}\n".encode(), "text/plain", head)
        if not self._authorized(path, head):
            return None
        if m := _BLOB.match(path):
            digest = Digest(m.group(1), int(m.group(2)))
            try:
                if (m.group(3) or "").endswith(_METADATA_SUFFIX):
                    return self._metadata(digest, m.group(3).removesuffix(".metadata"), head)
                return self._blob(digest, head)
            except RegistryUnavailable as exc:  # before any header: the store could not ask its registry
                return self._send(HTTPStatus.SERVICE_UNAVAILABLE, f"{exc}\n".encode(), "text/plain", head)
        if m := _HOUSE.match(path):
            if not m.group(2):
                return self._redirect(f"/wheelhouse/{m.group(1)}/simple/")
            return self._house(m.group(1), None, head)
        if m := _PROJECT.match(path):
            name = canonicalize_name(m.group(2))
            if name != m.group(2) or not m.group(3):  # PEP 503: normalized names, trailing slash
                return self._redirect(f"/wheelhouse/{m.group(1)}/simple/{name}/")
            return self._house(m.group(1), name, head)
        if _SHORT_KEY.match(path):
            return self._send(HTTPStatus.NOT_FOUND, b"unknown lock key: a lock key is 64 hex digits, as venvsmith "
                              b"prints it\n", "text/plain", head)
        self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain", head)

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.MOVED_PERMANENTLY)
        self.send_header("Location", self.server.link(location))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _house(self, lock_key: str, project: str | None, head: bool) -> None:
        chosen = negotiate(self.headers.get("Accept"))
        if chosen is None:
            return self._send(HTTPStatus.NOT_ACCEPTABLE, b"ask for application/vnd.pypi.simple.v1+json or"
                              b" text/html\n", "text/plain", head, vary=True)
        form, content_type = chosen
        wheels = self.server.engine.environments.wheels_of(lock_key)
        if wheels is None:
            return self._send(HTTPStatus.NOT_FOUND, b"unknown lock key\n", "text/plain", head, vary=True)
        if project is None:
            house = [self._house_wheel(w, with_metadata=False) for w in wheels]
            page = root_json(house) if form == "json" else root_page(house)
        else:
            mine = [w for w in wheels if parse_wheel_filename(w.filename)[0] == project]
            if not mine:
                return self._send(HTTPStatus.NOT_FOUND, b"unknown project\n", "text/plain", head, vary=True)
            house = [self._house_wheel(w, with_metadata=True) for w in mine]
            page = project_json(project, house) if form == "json" else project_page(project, house)
        self._send(HTTPStatus.OK, page.encode(), content_type, head, vary=True)

    def _house_wheel(self, wheel: OutputRef, *, with_metadata: bool) -> HouseWheel:
        d = wheel.digest
        href = self.server.link(f"/blobs/{d.hash}/{d.size_bytes}/{wheel.filename}")
        if not with_metadata:
            return HouseWheel(wheel.filename, d.hash, href, d.size_bytes)
        try:
            meta = core_metadata(self.server.engine.store, self.server.engine.actions, wheel.filename, d)
        except Exception as exc:  # noqa: BLE001 - listed without metadata: clients then read the wheel itself
            if status_of(exc) is None:
                raise
            log.warning("no core metadata for %s: %s", wheel.filename, exc)
            return HouseWheel(wheel.filename, d.hash, href, d.size_bytes)
        return HouseWheel(wheel.filename, d.hash, href, d.size_bytes, meta.ref.digest.hash, meta.requires_python)

    def _metadata(self, wheel: Digest, filename: str, head: bool) -> None:
        """PEP 658: the METADATA of a stored wheel, itself verified before it is sent."""
        store = self.server.engine.store
        if not store.contains(wheel):
            return self._send(HTTPStatus.NOT_FOUND, b"no such blob\n", "text/plain", head)
        try:
            meta = core_metadata(store, self.server.engine.actions, filename, wheel)
            data = b"".join(piece for _, piece in verified_chunks(store, meta.ref.digest))
        except Exception as exc:  # noqa: BLE001
            known = status_of(exc)
            if known is None:
                raise
            log.warning("no core metadata for %s: %s", filename, exc)
            return self._send(HTTPStatus.NOT_FOUND, b"no metadata for this blob\n", "text/plain", head)
        self._send(HTTPStatus.OK, data, "application/octet-stream", head)

    def _blob(self, digest: Digest, head: bool) -> None:
        """One blob, whole (200) or a byte range (206), verified like GetArtifact: a corrupt blob never yields a
        complete successful response (an error status when found before the headers, else a cut connection)."""
        store = self.server.engine.store
        if not store.contains(digest):
            return self._send(HTTPStatus.NOT_FOUND, b"no such blob\n", "text/plain", head)
        size = digest.size_bytes
        status, start, end = HTTPStatus.OK, 0, size - 1
        header = self.headers.get("Range")
        if header and (m := _RANGE.match(header.strip())) and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start, end = max(size - int(m.group(2)), 0), size - 1
            if start >= size or start > end:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = HTTPStatus.PARTIAL_CONTENT
        pieces = iter(()) if head else observe.artifact_read("http", verified_chunks(store, digest, start,
                                                                                    end - start + 1))
        try:
            first = next(pieces, None)  # a blob of one chunk is verified whole before any header goes out
        except DigestMismatch:
            return self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"stored blob is corrupt; it was removed\n",
                              "text/plain", head)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{digest.hash}"')
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if first is None:
            return
        try:
            self.wfile.write(first[1])
            for _, data in pieces:
                self.wfile.write(data)
        except DigestMismatch:
            self.close_connection = True  # the last bytes are never sent: the client sees a short body

    def _send(self, status: int, body: bytes, content_type: str, head: bool, vary: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if vary:
            self.send_header("Vary", "Accept")
        self.end_headers()
        if not head:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], engine: BuildEngine, tokens: TokenStore | None = None,
                 tls: ServerTls | None = None, public_url: str | None = None) -> None:
        super().__init__(address, _Handler)
        self.engine = engine
        self.tokens = tokens
        self.tls = tls
        self.public_url = public_url

    def link(self, path: str) -> str:
        """A link to ``path`` (``/blobs/...``) in a page or a redirect: under the operator's public URL when there
        is one (it may carry a path prefix, behind a proxy), else root-relative (to the address the client used)."""
        return self.public_url + path.lstrip("/") if self.public_url else path

    def get_request(self):
        sock, address = super().get_request()
        if self.tls is None:
            return sock, address
        # The handshake runs in the request's own thread (on its first read): a slow client cannot hold accept().
        return self.tls.ssl_context().wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def handle_error(self, request, client_address) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLError | ConnectionError):  # a failed handshake, a plaintext client
            log.debug("HTTP connection from %s failed: %s", client_address, exc)
            return
        super().handle_error(request, client_address)


class BlobHttpServer:
    """The HTTP endpoint in a background thread; ``base_url`` is what artifact refs point at (``why`` says how it
    was chosen)."""

    def __init__(self, engine: BuildEngine, host: str = "127.0.0.1", port: int = 0, *,
                 tokens: TokenStore | None = None, tls: ServerTls | None = None,
                 public_url: str | None = None) -> None:
        """``tokens``: require a token on every path but ``/`` and ``/healthz`` (see the module docstring);
        ``tls``: serve HTTPS with the gRPC server's certificate (and client CA), re-read when the files change;
        ``public_url``: the base URL callers reach this endpoint at (checked by
        :func:`~venvsmith.core.public_url.check_public_url`), else an address of this host clients can reach
        (:func:`~venvsmith.core.public_url.advertised_host`: never ``0.0.0.0`` or ``::``)."""
        if tls is not None:
            tls.ssl_context()  # unusable files: refuse to start
        self._server = _Server((host, port), engine, tokens, tls, public_url)
        self.port = self._server.server_address[1]
        if public_url:
            self.base_url, self.why = public_url, "--public-url"
        else:
            advertised = advertised_host(host)
            self.base_url = f"{'https' if tls else 'http'}://{advertised.host}:{self.port}/"
            self.why = f"--public-url not set: {advertised.why}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="blob-http", daemon=True)

    def start(self) -> BlobHttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


__all__ = ["BlobHttpServer", "InvalidDigest"]
