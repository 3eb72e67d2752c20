"""A plain HTTP face of the store: blobs by digest, and each build's wheels as a PEP 503 simple index.

``GET /blobs/<sha256>/<size>/<filename>`` (Range requests honoured) and
``GET /wheelhouse/<lock key>/simple/[<project>/]`` — so ``pip install --index-url`` / ``uv pip install`` use a
build's wheels unchanged.
"""

from __future__ import annotations

import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from packaging.utils import canonicalize_name

from .digest import Digest, DigestMismatch, InvalidDigest
from .engine import BuildEngine
from .store.reader import verified_chunks
from .wheelhouse import HouseWheel, project_page, root_page

_BLOB = re.compile(r"^/blobs/([0-9a-f]{64})/(\d+)(?:/[^/]+)?$")
_HOUSE = re.compile(r"^/wheelhouse/([0-9a-f]{64})/simple/(?:([^/]+)/)?$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's signature
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/healthz", "/"):
            return self._send(HTTPStatus.OK, b"ok\n", "text/plain", head)
        if m := _BLOB.match(path):
            return self._blob(Digest(m.group(1), int(m.group(2))), head)
        if m := _HOUSE.match(path):
            return self._house(m.group(1), m.group(2), head)
        self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain", head)

    def _house(self, lock_key: str, project: str | None, head: bool) -> None:
        wheels = self.server.engine.wheels_of(lock_key)
        if wheels is None:
            return self._send(HTTPStatus.NOT_FOUND, b"unknown lock key\n", "text/plain", head)
        house = [HouseWheel(w.filename, w.digest.hash, f"/blobs/{w.digest.hash}/{w.digest.size_bytes}/{w.filename}")
                 for w in wheels]
        if project is None:
            page = root_page(house)
        else:
            name = canonicalize_name(project)
            if name != project:
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", f"/wheelhouse/{lock_key}/simple/{name}/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if not any(w.project == name for w in house):
                return self._send(HTTPStatus.NOT_FOUND, b"unknown project\n", "text/plain", head)
            page = project_page(name, house)
        self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8", head)

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
        pieces = iter(()) if head else verified_chunks(store, digest, start, end - start + 1)
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

    def _send(self, status: int, body: bytes, content_type: str, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], engine: BuildEngine) -> None:
        super().__init__(address, _Handler)
        self.engine = engine


class BlobHttpServer:
    """The HTTP endpoint in a background thread; ``base_url`` is what artifact refs point at."""

    def __init__(self, engine: BuildEngine, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), engine)
        self.port = self._server.server_address[1]
        self.base_url = f"http://{host}:{self.port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="blob-http", daemon=True)

    def start(self) -> BlobHttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


__all__ = ["BlobHttpServer", "InvalidDigest"]
