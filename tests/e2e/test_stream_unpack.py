"""The streaming thin client (:func:`venvsmith.clients.stream_unpack.receive_venv`) against real gRPC servers.

A real ``venvsmith serve builder`` builds one venv whose archive spans several GetArtifact chunks (a few MiB of
incompressible data). The client receives it directly, through a TCP proxy on 127.0.0.1 that cuts the
connection once after some bytes (the download resumes by offset), and from a small hostile ArtifactService
(a real gRPC server in this process) that serves wrong or crafted bytes. A full disk is a real size-limited
tmpfs in a private mount namespace (``unshare -rm``); the test is skipped where that is not allowed.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import zstandard

from builder_service.archive import unpack
from builder_service.errors import UnsafeArchive
from tests.fixtures.builder_server import BuilderProcess
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.clients.builder import RemoteBuilder
from venvsmith.clients.stream_unpack import receive_venv
from venvsmith.core.resolution import CallError
from venvsmith.v1 import artifact_pb2, artifact_pb2_grpc, builder_pb2, common_pb2, resolver_pb2

pytestmark = pytest.mark.slow

MiB = 1 << 20
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("stream-index"))
    noise = random.Random(14).randbytes(3 * MiB)  # incompressible: the archive is > 3 chunks of 1 MiB
    files = {f"bulky/m{i}.py": b"VALUE = %d\n" % i for i in range(300)}
    files.update({"bulky/__init__.py": b"VALUE = 'bulky'\n", "bulky/noise.bin": noise})
    b.add("bulky", "1.0", files=files)
    with IndexServer(b) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory, index) -> Iterator[BuilderProcess]:
    process = BuilderProcess(tmp_path_factory.mktemp("stream-home"), allow=[index.base_url])
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="module")
def built(server, index, tmp_path_factory) -> tuple[common_pb2.ArtifactRef, Path]:
    """The venv archive's ref, and the archive itself fetched to a file (the reference to compare with)."""
    config = common_pb2.IndexConfig(index_url=index.url)
    request = builder_pb2.ResolveAndBuildRequest(
        resolve=resolver_pb2.ResolveRequest(requirements=["bulky"], index=config),
        options=builder_pb2.BuildOptions(wheels=True, venv_archive=True, index=config))
    result = None
    for event in server.stub.ResolveAndBuild(request, timeout=120):
        if event.WhichOneof("event") == "build" and event.build.WhichOneof("event") == "result":
            result = event.build.result
    assert result is not None and result.HasField("venv_archive")
    ref = result.venv_archive
    assert ref.digest.size_bytes > 3 * MiB
    path = tmp_path_factory.mktemp("stream-ref") / "venv.tar.zst"
    with RemoteBuilder(server.address) as client:
        client.fetch(ref.digest, path)
    return ref, path


def tree(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: kind, mode and contents (or link target)."""
    out: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir", st.st_mode & 0o777)
        else:
            out[rel] = ("file", st.st_mode & 0o777, path.read_bytes())
    return out


def expected(built, tmp_path: Path) -> dict[str, tuple]:
    reference = tmp_path / "reference"
    unpack(built[1], reference)
    return tree(reference)


def sealed(entries: dict[str, tuple]) -> dict[str, tuple]:
    """``entries`` as a hard-linked node-cache placement has them: files without write permission (they are
    the node's read-only copy), directories the venv's own."""
    return {rel: (kind, mode & ~0o222, *rest) if kind == "file" else (kind, mode, *rest)
            for rel, (kind, mode, *rest) in entries.items()}


def assert_nothing_left(parent: Path) -> None:
    """No destination and no staging directory next to it."""
    assert sorted(p.name for p in parent.iterdir()) == []


# ----------------------------------------------------------------------------------------------- proxy


class CuttingProxy:
    """TCP on 127.0.0.1 forwarded to ``upstream``; the first connection is reset after ``cut_after`` bytes from
    the server; with ``refuse_later`` every later connection is closed at once (the server is gone for good)."""

    def __init__(self, upstream: tuple[str, int], cut_after: int, *, refuse_later: bool = False) -> None:
        self.upstream, self.cut_after, self.refuse_later = upstream, cut_after, refuse_later
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self.cut = threading.Event()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            if self.cut.is_set() and self.refuse_later:
                _reset(client)
                continue
            upstream = socket.create_connection(self.upstream)
            limit = self.cut_after if self.connections == 1 else None
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, limit), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if limit is not None and sent + len(data) >= limit:
                    dst.sendall(data[:limit - sent])
                    # The connection stalls, then breaks: the client gets to read what arrived before the reset
                    # (gRPC may drop a received message that the reset overtakes, and the download would then
                    # start again from its first byte instead of resuming).
                    time.sleep(0.5)
                    self.cut.set()
                    _reset(dst)
                    _reset(src)
                    return
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        self.listener.close()


def _reset(s: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), like a connection that broke. ``SHUT_RD`` first wakes the other pipe
    thread blocked reading it: until that read returns, the socket would not really close."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    s.close()


# ----------------------------------------------------------------------------------------- hostile server


class _Blobs(artifact_pb2_grpc.ArtifactServiceServicer):
    """Serves ``data`` for whatever digest is asked, from the requested offset, in 256 KiB chunks."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def GetArtifact(self, request, context):  # noqa: N802
        for start in range(request.offset, len(self.data), 256 << 10):
            yield artifact_pb2.Chunk(data=self.data[start:start + (256 << 10)], offset=start)


class _StallingBlobs(_Blobs):
    """Like :class:`_Blobs`, but the first ``stalls`` calls stop after ``after`` bytes without ending or breaking:
    the stream stays open, nothing more comes (a peer that hangs)."""

    def __init__(self, data: bytes, after: int, stalls: int) -> None:
        super().__init__(data)
        self.after, self.stalls, self.calls = after, stalls, 0

    def GetArtifact(self, request, context):  # noqa: N802
        self.calls += 1
        stall = self.calls <= self.stalls
        for chunk in super().GetArtifact(request, context):
            if stall and chunk.offset >= self.after:
                while context.is_active():
                    time.sleep(0.05)
                return
            yield chunk


@pytest.fixture
def lying_server():
    """``serve(data)`` -> the address of a real gRPC ArtifactService that answers every read with ``data``
    (``servicer``: another one)."""
    servers = []

    def serve(data: bytes, servicer: _Blobs | None = None) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        artifact_pb2_grpc.add_ArtifactServiceServicer_to_server(servicer or _Blobs(data), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield serve
    for server in servers:
        server.stop(None)


def ref_of(data: bytes, *, claimed_hash: str | None = None) -> common_pb2.ArtifactRef:
    import hashlib

    return common_pb2.ArtifactRef(digest=common_pb2.Digest(hash=claimed_hash or hashlib.sha256(data).hexdigest(),
                                                           size_bytes=len(data)), filename="venv.tar.zst")


def tar_zst(entries: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """A tar.zst of (name, file bytes, or symlink target) entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                assert data is not None
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return zstandard.ZstdCompressor().compress(buf.getvalue())


# ----------------------------------------------------------------------------------------------- tests


def test_the_streamed_venv_is_the_tree_unpack_makes(server, built, tmp_path):
    dest = tmp_path / "out" / "venv"
    with RemoteBuilder(server.address) as client:
        receive_venv(client, built[0], dest)
    assert tree(dest) == expected(built, tmp_path)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["venv"]  # no staging directory left


def test_an_interrupted_download_resumes_by_offset(server, built, tmp_path):
    proxy = CuttingProxy((server.host, server.port), cut_after=int(1.5 * MiB))
    notes: list[str] = []
    dest = tmp_path / "out" / "venv"
    try:
        with RemoteBuilder(proxy.address) as client:
            receive_venv(client, built[0], dest, note=notes.append)
    finally:
        proxy.close()
    assert proxy.cut.is_set() and proxy.connections >= 2
    assert len(notes) == 1 and "resuming" in notes[0], notes
    broke_at = int(notes[0].split(" at byte ")[1].split()[0])
    assert 0 < broke_at < built[0].digest.size_bytes
    assert tree(dest) == expected(built, tmp_path)


def test_a_connection_lost_for_good_leaves_nothing(server, built, tmp_path):
    proxy = CuttingProxy((server.host, server.port), cut_after=int(1.5 * MiB), refuse_later=True)
    out = tmp_path / "out"
    out.mkdir()
    try:
        with RemoteBuilder(proxy.address, retries=0) as client, pytest.raises(CallError) as caught:
            receive_venv(client, built[0], out / "venv")
    finally:
        proxy.close()
    assert caught.value.status == "UNAVAILABLE"
    assert_nothing_left(out)


def test_a_stalled_download_is_resumed_after_its_deadline(built, lying_server, tmp_path, monkeypatch):
    """A stream that stops without breaking is not waited on for ever: past the call's deadline (a few seconds
    here) the download resumes from the bytes received."""
    import venvsmith.clients.stream_unpack as stream_unpack

    monkeypatch.setattr(stream_unpack, "STALL_SECONDS", 1.0)
    monkeypatch.setattr(stream_unpack, "MIN_RATE", 64 * MiB)
    data = built[1].read_bytes()
    servicer = _StallingBlobs(data, after=len(data) // 2, stalls=1)
    notes: list[str] = []
    with RemoteBuilder(lying_server(data, servicer)) as client:
        receive_venv(client, ref_of(data), tmp_path / "venv", note=notes.append)
    assert servicer.calls == 2 and len(notes) == 1 and "DEADLINE_EXCEEDED" in notes[0], notes
    assert int(notes[0].split(" at byte ")[1].split()[0]) >= len(data) // 2
    assert tree(tmp_path / "venv") == expected(built, tmp_path)


def test_a_download_that_stalls_every_time_fails_and_leaves_nothing(built, lying_server, tmp_path, monkeypatch):
    import venvsmith.clients.stream_unpack as stream_unpack

    monkeypatch.setattr(stream_unpack, "STALL_SECONDS", 0.5)
    monkeypatch.setattr(stream_unpack, "MIN_RATE", 64 * MiB)
    data = built[1].read_bytes()
    servicer = _StallingBlobs(data, after=len(data) // 2, stalls=100)
    out = tmp_path / "out"
    out.mkdir()
    with RemoteBuilder(lying_server(data, servicer)) as client, pytest.raises(CallError) as caught:
        receive_venv(client, ref_of(data), out / "venv")
    assert caught.value.status == "DEADLINE_EXCEEDED"
    assert servicer.calls == 1 + stream_unpack.MAX_STALLED_RESUMES
    assert_nothing_left(out)


def test_bytes_that_are_not_the_digest_leave_nothing(built, lying_server, tmp_path):
    data = built[1].read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    # The right bytes under another digest: every member is fine, the digest check at the end refuses them.
    with RemoteBuilder(lying_server(data)) as client, pytest.raises(CallError) as caught:
        receive_venv(client, ref_of(data, claimed_hash="0" * 64), out / "venv")
    assert caught.value.status == "DATA_LOSS" and "nothing unpacked" in caught.value.message
    assert_nothing_left(out)
    # One byte changed in the middle: the decompressor or the digest refuses it (DATA_LOSS either way).
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    with RemoteBuilder(lying_server(bytes(flipped))) as client, pytest.raises(CallError) as caught:
        receive_venv(client, ref_of(data), out / "venv")
    assert caught.value.status == "DATA_LOSS"
    assert_nothing_left(out)


def test_a_ref_claiming_far_more_than_the_archive_is_cut_short(built, lying_server, tmp_path):
    data = built[1].read_bytes() + bytes(8 * MiB)  # a valid archive, then megabytes the ref's digest covers
    out = tmp_path / "out"
    out.mkdir()
    with RemoteBuilder(lying_server(data)) as client, pytest.raises(CallError, match="after the end") as caught:
        receive_venv(client, ref_of(data), out / "venv")
    assert caught.value.status == "DATA_LOSS"
    assert_nothing_left(out)


def test_more_bytes_than_the_ref_says_are_refused(built, lying_server, tmp_path):
    data = built[1].read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    with RemoteBuilder(lying_server(data + b"more")) as client, pytest.raises(CallError) as caught:
        receive_venv(client, ref_of(data), out / "venv")
    assert caught.value.status == "DATA_LOSS"
    assert_nothing_left(out)


@pytest.mark.parametrize("entries, reason", [
    ([("bin/ok", b"x", None), ("../escaped", b"x", None)], "'..' component"),
    ([("lib/evil", None, "../../outside")], "leads outside"),
    ([("/etc/evil", b"x", None)], "absolute path"),
])
def test_a_hostile_archive_with_a_matching_digest_leaves_nothing(entries, reason, lying_server, tmp_path):
    data = tar_zst(entries)
    out = tmp_path / "out"
    out.mkdir()
    with RemoteBuilder(lying_server(data)) as client, pytest.raises(UnsafeArchive, match=reason):
        receive_venv(client, ref_of(data), out / "venv")
    assert_nothing_left(out)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "outside").exists()


def test_a_compression_bomb_is_refused_while_streaming(lying_server, tmp_path):
    buf = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(buf, closefd=False) as zst:
        with tarfile.open(fileobj=zst, mode="w|") as tar:
            info = tarfile.TarInfo("zeros.bin")
            info.size = 64 * MiB
            tar.addfile(info, io.BytesIO(bytes(info.size)))
    data = buf.getvalue()
    out = tmp_path / "out"
    out.mkdir()
    with RemoteBuilder(lying_server(data)) as client, pytest.raises(UnsafeArchive, match="compression bomb"):
        receive_venv(client, ref_of(data), out / "venv")
    assert_nothing_left(out)


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


FULL_DISK_SCRIPT = """
import json, os, sys
from pathlib import Path
from venvsmith.clients.builder import RemoteBuilder
from venvsmith.clients.stream_unpack import receive_venv
from venvsmith.v1 import common_pb2

address, ref_hex, small = sys.argv[1], sys.argv[2], Path(sys.argv[3])
ref = common_pb2.ArtifactRef.FromString(bytes.fromhex(ref_hex))
outcome = {}
try:
    with RemoteBuilder(address) as client:
        receive_venv(client, ref, small / "venv")
    outcome["error"] = None
except OSError as exc:
    outcome["error"] = exc.errno
outcome["left"] = sorted(os.listdir(small))
outcome["free"] = os.statvfs(small).f_bfree * os.statvfs(small).f_frsize
print(json.dumps(outcome))
"""


def test_a_full_disk_leaves_no_partial_environment(server, built, tmp_path):
    """A real 2 MiB tmpfs (the venv needs more than 3 MiB), mounted in a private namespace by ``unshare -rm``."""
    if not _can_mount_tmpfs():
        pytest.skip("unshare -rm with a tmpfs mount is not allowed here")
    small = tmp_path / "small"
    small.mkdir()
    script = (f"mount -t tmpfs -o size=2m tmpfs {small} && "
              f"exec {sys.executable} -c \"$0\" {server.address} {built[0].SerializeToString().hex()} {small}")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script, FULL_DISK_SCRIPT], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["error"] == 28, outcome  # ENOSPC
    assert outcome["left"] == [], outcome  # no venv, no staging directory
    assert outcome["free"] >= 2 * MiB - (64 << 10), outcome  # and their space is free again


# ------------------------------------------------------------------------------------------- the thin CLI

#: Run the CLI's main, then print the modules it imported (one JSON line, last on stdout).
LIST_MODULES = ("import json, sys\nfrom venvsmith.cli import main\ncode = main(sys.argv[1:])\n"
                "print(json.dumps(sorted(sys.modules)))\nsys.exit(code)\n")
#: What the remote cache-hit path must not import: the resolver, packaging, the builder's engine, store and
#: server code, the serve options (prometheus, tomllib), the index client.
HEAVY = ("resolver_service", "packaging", "builder_service.engine", "builder_service.orchestrate",
         "builder_service.store", "builder_service.materialize", "builder_service.service",
         "venvsmith.cli.serve_options", "venvsmith.core.index.finder", "venvsmith.core.index.http",
         "prometheus_client", "urllib3", "rich")
#: With --node-cache the placement code (builder_service.materialize: hard links or a layered venv) and the size
#: parser of --node-cache-max-size (builder_service.store.disk_guard) are what the path needs; the store's
#: backends and the rest stay out.
NODE_HEAVY = tuple(m for m in HEAVY if m not in ("builder_service.materialize", "builder_service.store")) + (
    "builder_service.store.filesystem", "builder_service.store.size_index", "builder_service.store.oci",
    "builder_service.store.registry", "builder_service.store.writer")


def thin_cli(server_address: str, index: IndexServer, dest: Path, home: Path, *extra: str,
             node_cache: Path | None = None) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    from tests.fixtures.builder_server import hermetic_env

    argv = [sys.executable, "-c", LIST_MODULES, "venv", str(dest), "--server", server_address,
            "--index-url", index.url, *extra, "bulky"]
    env = hermetic_env(home)
    if node_cache is not None:
        env["VENVSMITH_NODE_CACHE"] = str(node_cache)
    proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = proc.stdout.strip().splitlines()
    return proc, json.loads(lines[-1]) if proc.returncode == 0 and lines else []


def heavy(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def test_the_remote_cache_hit_path_imports_only_what_it_needs(server, index, built, tmp_path):
    dest = tmp_path / "venv"
    proc, modules = thin_cli(server.address, index, dest, tmp_path / "home", "--no-verify")
    assert proc.returncode == 0, proc.stderr
    assert "from the store" in proc.stdout
    assert heavy(modules, HEAVY) == []
    assert "venvsmith.clients.stream_unpack" in modules  # (the list is the CLI's: it did unpack)
    assert tree(dest) == expected(built, tmp_path)


def test_the_verified_remote_path_still_imports_no_resolver(server, index, built, tmp_path):
    dest = tmp_path / "venv"
    proc, modules = thin_cli(server.address, index, dest, tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    assert "venvsmith.clients.verify" in modules  # the answer was verified (this path reads the index)
    assert heavy(modules, ("resolver_service", "builder_service.engine", "builder_service.store",
                           "venvsmith.cli.serve_options", "prometheus_client")) == []
    assert tree(dest) == expected(built, tmp_path)


def test_venv_server_resumes_a_broken_download(server, index, built, tmp_path):
    proxy = CuttingProxy((server.host, server.port), cut_after=int(1.5 * MiB))
    try:
        proc, _ = thin_cli(proxy.address, index, tmp_path / "venv", tmp_path / "home", "--no-verify")
    finally:
        proxy.close()
    assert proc.returncode == 0, proc.stderr
    assert proxy.cut.is_set()
    assert "resuming from there" in proc.stderr
    assert tree(tmp_path / "venv") == expected(built, tmp_path)


def test_a_node_cache_keeps_the_verdict_and_the_probe_for_the_next_pod(server, index, built, tmp_path):
    node = tmp_path / "node"
    first, modules = thin_cli(server.address, index, tmp_path / "pod1" / "venv", tmp_path / "pod1" / "home",
                              node_cache=node)
    assert first.returncode == 0, first.stderr
    assert "venvsmith.clients.verify" in modules  # the first pod of the node verifies
    assert len(list((node / "client" / "verdicts").iterdir())) == 1
    assert (node / "client" / "probes.json").is_file()
    # The next pod (its own empty home): the same request and answer, so the kept verdict is used and the thin
    # path imports no more than with --no-verify.
    second, modules = thin_cli(server.address, index, tmp_path / "pod2" / "venv", tmp_path / "pod2" / "home",
                               node_cache=node)
    assert second.returncode == 0, second.stderr
    assert heavy(modules, NODE_HEAVY) == [] and "venvsmith.clients.verify" not in modules
    # ... and the server's answer too, until it expires: no call, not even gRPC imported.
    assert "the node's kept answer" in second.stdout and heavy(modules, ("grpc",)) == []
    assert tree(tmp_path / "pod2" / "venv") == sealed(expected(built, tmp_path))
    # Another request (one more constraint line) is another key: verified again, a second verdict kept.
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("bulky==1.0\n")
    third, modules = thin_cli(server.address, index, tmp_path / "pod3" / "venv", tmp_path / "pod3" / "home",
                              "-c", str(constraints), node_cache=node)
    assert third.returncode == 0, third.stderr
    assert "venvsmith.clients.verify" in modules
    assert len(list((node / "client" / "verdicts").iterdir())) == 2
