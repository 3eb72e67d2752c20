"""``--mirror``: a local PEP 503 mirror of exactly the files the benchmark sets need, served on the loopback.

Built once (and extended when a set is added or changed) under ``bench/work/mirror/``:

1. the pins of every set are the ones venvsmith resolves against the configured indexes (``venvsmith resolve
   --server`` to a ``serve builder`` subprocess, so that an sdist with dynamic metadata is prepared by the
   builder), plus ``setuptools`` and ``wheel``, which every tool needs to build an sdist-only project;
   should venvsmith fail on a set, its pins come from ``uv pip compile`` and each file from ``pip download
   --no-deps`` (recorded in the manifest as such);
2. every pinned file is downloaded (venvsmith's client; ``file://`` URLs copied) and checked against its sha256;
3. ``simple/<name>/index.html`` links each file as ``../../files/<file>#sha256=<hex>`` with
   ``data-requires-python``, and a wheel's ``METADATA`` is written beside it as ``<file>.metadata`` (PEP 658
   ``data-core-metadata``), so that no tool has to download a whole wheel to read its dependencies.

``serve_mirror()`` serves the tree with ``python -m http.server`` on 127.0.0.1 (a separate process) and yields
the :class:`IndexArgs` every tool then gets: ``--index-url http://127.0.0.1:PORT/simple/`` and nothing else.
The public index is not contacted while the mirror is in use.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

from common import SCRUB, WORK_DIR, failure_text
from resolve_bench import IndexArgs, ResolverServer, Tools, canonical, free_port, timed

MIRROR_DIR = WORK_DIR / "mirror"
#: What pip, uv and venvsmith fetch to build an sdist-only project with setuptools' legacy backend.
BUILD_REQUIREMENTS = ("setuptools>=40.8.0", "wheel")
BUILD_SET = "_build-requirements"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _set_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class Mirror:
    """The mirror tree and its manifest (which sets it holds, and every file with where it came from)."""

    def __init__(self, root: Path = MIRROR_DIR) -> None:
        self.root = root
        self.files_dir = root / "files"
        self.manifest_path = root / "manifest.json"
        self.manifest: dict = {"sets": {}, "files": {}}
        if self.manifest_path.exists():
            self.manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def missing(self, sets: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
        held = self.manifest["sets"]
        return [(n, p) for n, p in sets if held.get(n, {}).get("digest") != _set_digest(p)]

    def save(self) -> None:
        self.manifest_path.write_text(SCRUB(json.dumps(self.manifest, indent=1, sort_keys=True)) + "\n",
                                      encoding="utf-8")

    # -- pins ------------------------------------------------------------------------------------------

    def pins_from_venvsmith(self, tools: Tools, server: ResolverServer, set_file: Path) -> tuple[list[dict], str]:
        cmd = [str(tools.venvsmith), "resolve", "--format", "json", "-r", str(set_file), "--server",
               server.address, *tools.index.argv()]
        seconds, proc, error = timed(cmd, tools.vs_env, tools.work, tools.opts.timeout)
        if error or proc.returncode != 0:
            return [], SCRUB(error or failure_text(proc))
        pins = json.loads(proc.stdout)["pins"]
        return [{k: p.get(k, "") for k in ("name", "version", "url", "filename", "sha256", "size",
                                            "requires_python")} for p in pins], ""

    def pins_from_uv_and_pip(self, tools: Tools, set_name: str, set_file: Path, work: Path) -> list[dict]:
        """Fallback: ``uv pip compile`` pins, each file fetched by ``pip download --no-deps``."""
        run = tools.uv_compile(set_file, work / "uv-cache", scenario="mirror", set_name=set_name, rep=0)
        if not run.ok:
            raise RuntimeError(f"uv pip compile failed too: {run.error}")
        pins = []
        for name, version in sorted(run.pins.items()):
            dest = work / "pip-download" / name
            dest.mkdir(parents=True, exist_ok=True)
            cmd = [str(tools.bench_python), "-m", "pip", "download", "--no-deps", "--quiet",
                   "--disable-pip-version-check", "--dest", str(dest), f"{name}=={version}", *tools.index.argv()]
            if tools.index.cert:
                cmd += ["--cert", tools.index.cert]
            _, proc, error = timed(cmd, tools._pip_env(), tools.work, tools.opts.timeout)
            if error or proc.returncode != 0:
                raise RuntimeError(f"pip download {name}=={version} failed: {SCRUB(error or failure_text(proc))}")
            (path,) = list(dest.iterdir())
            pins.append({"name": name, "version": version, "url": path.resolve().as_uri(), "filename": path.name,
                         "sha256": _sha256(path), "size": path.stat().st_size, "requires_python": ""})
        return pins

    # -- files -----------------------------------------------------------------------------------------

    def fetch(self, pins: list[dict], cert: str | None) -> None:
        """Download every pin's file not yet in ``files/``, verifying its sha256 (and size when known)."""
        from venvsmith.core.index.http import HttpClient, unexpected_status

        self.files_dir.mkdir(parents=True, exist_ok=True)
        todo = {p["filename"]: p for p in pins if not (self.files_dir / p["filename"]).exists()}
        client = HttpClient(timeout=180.0, ca_bundle=cert)

        def one(pin: dict) -> None:
            dest = self.files_dir / pin["filename"]
            part = dest.with_name(dest.name + ".part")
            parts = urlsplit(pin["url"])
            if parts.scheme == "file":
                shutil.copyfile(unquote(parts.path), part)
            else:
                with client.stream(pin["url"], index=pin["url"]) as response, open(part, "wb") as out:
                    if response.status_code != 200:
                        raise unexpected_status(response, pin["url"])
                    for block in response.iter_bytes(1 << 20):
                        out.write(block)
            got = _sha256(part)
            if got != pin["sha256"] or (pin.get("size") and part.stat().st_size != int(pin["size"])):
                part.unlink()
                raise RuntimeError(f"{pin['filename']}: sha256 {got} does not match the pin's {pin['sha256']}")
            os.replace(part, dest)

        try:
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(one, todo.values()))
        finally:
            client.close()

    def write_metadata(self, filename: str) -> str:
        """PEP 658: the wheel's METADATA as ``<file>.metadata``; returns its sha256 ("" for an sdist)."""
        if not filename.endswith(".whl"):
            return ""
        target = self.files_dir / f"{filename}.metadata"
        if not target.exists():
            with zipfile.ZipFile(self.files_dir / filename) as zf:
                names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
                if len(names) != 1:
                    return ""
                target.write_bytes(zf.read(names[0]))
        return _sha256(target)

    def write_pages(self) -> None:
        """``simple/index.html`` and one PEP 503 page per project, from the manifest."""
        projects: dict[str, list[dict]] = {}
        for info in self.manifest["files"].values():
            projects.setdefault(canonical(info["name"]), []).append(info)
        simple = self.root / "simple"
        if simple.exists():
            shutil.rmtree(simple)
        simple.mkdir(parents=True)
        links = "".join(f'<a href="{n}/">{n}</a><br>\n' for n in sorted(projects))
        (simple / "index.html").write_text(
            f"<!DOCTYPE html>\n<html><head><title>Simple index</title></head><body>\n{links}</body></html>\n",
            encoding="utf-8")
        for name, files in projects.items():
            rows = []
            for info in sorted(files, key=lambda i: i["filename"]):
                attrs = ""
                if info.get("requires_python"):
                    attrs += f' data-requires-python="{html.escape(info["requires_python"], quote=True)}"'
                meta = self.write_metadata(info["filename"])
                if meta:
                    attrs += f' data-core-metadata="sha256={meta}" data-dist-info-metadata="sha256={meta}"'
                href = f"../../files/{info['filename']}#sha256={info['sha256']}"
                rows.append(f'<a href="{html.escape(href, quote=True)}"{attrs}>{html.escape(info["filename"])}</a><br>')
            page = simple / name
            page.mkdir()
            (page / "index.html").write_text(
                '<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
                f"<title>Links for {name}</title></head><body>\n" + "\n".join(rows) + "\n</body></html>\n",
                encoding="utf-8")

    # -- build -----------------------------------------------------------------------------------------

    def ensure(self, tools: Tools, sets: list[tuple[str, Path]], rebuild: bool = False) -> None:
        """Add to the mirror every set it does not hold yet (all of them with ``rebuild``)."""
        if rebuild and self.root.exists():
            shutil.rmtree(self.root)
            self.manifest = {"sets": {}, "files": {}}
        self.root.mkdir(parents=True, exist_ok=True)
        build_set = self.root / f"{BUILD_SET}.txt"
        build_set.write_text("\n".join(BUILD_REQUIREMENTS) + "\n", encoding="utf-8")
        todo = self.missing([*sets, (BUILD_SET, build_set)])
        if not todo:
            return
        print(f"mirror: adding {', '.join(n for n, _ in todo)} to {self.root}", flush=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=WORK_DIR) as tmp:
            work = Path(tmp)
            server = ResolverServer(tools, work / "builder-home", service="builder")
            server.start()
            try:
                for name, set_file in todo:
                    pins, error = self.pins_from_venvsmith(tools, server, set_file)
                    source = "venvsmith resolve --server (builder)"
                    if error:
                        print(f"  {name}: venvsmith could not resolve it ({error[:200]}); "
                              "falling back to uv pip compile + pip download", flush=True)
                        pins = self.pins_from_uv_and_pip(tools, name, set_file, work / name)
                        source = f"uv pip compile + pip download (venvsmith failed: {error[:300]})"
                    self.fetch(pins, tools.index.cert)
                    for pin in pins:
                        self.manifest["files"][pin["filename"]] = {
                            "name": pin["name"], "version": pin["version"], "filename": pin["filename"],
                            "sha256": pin["sha256"], "size": pin.get("size") or 0,
                            "requires_python": pin.get("requires_python") or ""}
                    self.manifest["sets"][name] = {
                        "digest": _set_digest(set_file), "pins": sorted(f"{p['name']}=={p['version']}" for p in pins),
                        "source": source}
                    print(f"  {name}: {len(pins)} files ({source.split(' (')[0]})", flush=True)
            finally:
                server.stop()
        self.manifest["upstream"] = tools.index.describe()
        self.write_pages()
        self.save()
        size = sum(f.stat().st_size for f in self.files_dir.iterdir()) / 2**20
        print(f"mirror: {len(self.manifest['files'])} files, {size:.0f} MiB, built in "
              f"{time.perf_counter() - started:.1f} s", flush=True)

    def describe(self) -> str:
        size = sum(f.stat().st_size for f in self.files_dir.iterdir() if not f.name.endswith(".metadata"))
        fallback = [n for n, s in self.manifest["sets"].items() if not s["source"].startswith("venvsmith")]
        text = (f"the bench's local PEP 503 mirror (`bench/work/mirror/`, {len(self.manifest['files'])} files, "
                f"{size / 2**20:.0f} MiB, PEP 658 `.metadata` for wheels) served by `python -m http.server` "
                "on the loopback; pins resolved by venvsmith against the configured indexes")
        if fallback:
            text += f" (sets {', '.join(fallback)}: pins from uv, files by `pip download`, venvsmith having failed)"
        return text


#: ``python -m http.server`` with a listen backlog of 128 (its default, 5, drops connections of concurrent
#: clients: each then waits a SYN retry of a second or more): ``python -c _SERVE PORT DIRECTORY``.
_SERVE = """
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
Server(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
"""


class MirrorServer:
    """An ``http.server`` over the mirror tree, bound to 127.0.0.1 (a backlog of 128)."""

    def __init__(self, root: Path, python: Path, log: Path) -> None:
        self.root = root
        self.python = python
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/simple/"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log, "w", encoding="utf-8") as log:
            self.proc = subprocess.Popen(
                [str(self.python), "-c", _SERVE, str(self.port), str(self.root)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the mirror's HTTP server did not come up (see {self.log})")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@contextlib.contextmanager
def serve_mirror(opts: argparse.Namespace, sets: list[tuple[str, Path]]) -> Iterator[IndexArgs]:
    """Build (or extend) the mirror for ``sets`` against the configured indexes, serve it, yield its index."""
    upstream = IndexArgs.from_pip_config()
    for url in (upstream.index_url or "", *upstream.extra_index_urls, *upstream.find_links):
        SCRUB.learn(url)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    mirror = Mirror()
    with tempfile.TemporaryDirectory(dir=WORK_DIR, prefix="mirror-build-") as tmp:
        mirror.ensure(Tools(opts, upstream, Path(tmp)), sets, rebuild=getattr(opts, "rebuild_mirror", False))
    server = MirrorServer(mirror.root, Tools(opts, upstream, WORK_DIR).bench_python, WORK_DIR / "mirror-http.log")
    server.start()
    try:
        yield IndexArgs(index_url=server.url, extra_index_urls=(), find_links=(), no_index=False, cert=None,
                        origin=mirror.describe(), isolated=True)
    finally:
        server.stop()


def add_mirror_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mirror", action="store_true",
                        help="point every tool at a local mirror of the sets' files (built once under bench/work/)")
    parser.add_argument("--rebuild-mirror", action="store_true", help="with --mirror: build the mirror anew")
