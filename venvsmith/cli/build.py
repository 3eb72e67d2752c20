"""``venvsmith build``, ``venvsmith venv``, ``venvsmith fetch`` and ``venvsmith serve builder``."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from venvsmith.cli.build_args import LINK_MODES, _IntermixedParser, add_commands  # noqa: F401 - re-exported
from venvsmith.cli.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from venvsmith.cli.messages import plural
from venvsmith.clients.builder import check_base_interpreter
from venvsmith.core.resolution import CallError
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID



def connect_builder(server: str | None, *, isolated: bool = False, security=None, retries: int | None = None):
    """A remote builder client for ``HOST:PORT``, else the embedded engines (bench/profile_venv.py wraps this)."""
    from venvsmith.cli.compose import builder_client

    return builder_client(server, isolated=isolated, security=security, retries=retries)


def _builder(args):
    from venvsmith.cli import is_isolated
    from venvsmith.cli.security_args import client_security

    return connect_builder(args.server, isolated=is_isolated(args), security=client_security(args, args.server),
                           retries=getattr(args, "retries", None))


def _options(args, *, venv: bool, wheelhouse: bool
             ) -> tuple[resolver_pb2.ResolveRequest, builder_pb2.BuildOptions, resolver_pb2.ResolveRequest]:
    """(the request as sent, the build options, the request as this caller resolves it: with its credentials)."""
    from venvsmith.cli import build_request, outgoing

    local = build_request(args)
    resolve = outgoing(args, local)
    return resolve, builder_pb2.BuildOptions(
        wheels=True,
        wheelhouse=wheelhouse,
        venv_archive=venv,
        compile_bytecode=args.compile,
        seed=args.seed,
        limits=builder_pb2.BuildLimits(timeout_seconds=max(args.build_timeout, 0)),
        index=resolve.index,
        stream_build_log=_verbose(args),
    ), local


def _verbose(args) -> bool:
    """``-v`` (before or after the command): the builds' output is shown."""
    return bool(getattr(args, "verbose", 0))


class _Progress:
    """Progress from the event stream: rich bars per pin on a terminal, one line per state change otherwise; with
    ``verbose``, each line of a build's log as ``  name | line``."""

    def __init__(self, quiet: bool, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.last: dict[str, int] = {}
        self.rich: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        if not quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

            self.rich = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TextColumn("{task.fields[state]}"), console=Console(stderr=True), transient=True)
            self.rich.start()

    def close(self) -> None:
        if self.rich is not None:
            self.rich.stop()

    def __call__(self, event: builder_pb2.ResolveAndBuildEvent) -> None:
        if self.quiet or event.WhichOneof("event") != "build":
            return
        build = event.build
        if build.WhichOneof("event") != "progress":
            return
        p = build.progress
        if p.log_lines:
            if self.verbose:
                self._show_lines(p.name, p.log_lines)
            return
        state = builder_pb2.PinProgress.State.Name(p.state).lower()
        if self.rich is not None:
            task = self.tasks.get(p.name)
            if task is None:
                task = self.tasks[p.name] = self.rich.add_task(f"{p.name}=={p.version}", total=None, state=state)
            total = p.bytes_total or p.wheel.digest.size_bytes or None
            done = p.bytes_done if p.state == builder_pb2.PinProgress.DOWNLOADING else (total or 0)
            self.rich.update(task, total=total, completed=done, state=state)
            return
        if p.state == builder_pb2.PinProgress.DOWNLOADING or self.last.get(p.name) == p.state:
            return
        self.last[p.name] = p.state
        print(f"  {state:<11} {p.name}=={p.version}", file=sys.stderr, flush=True)

    def _show_lines(self, name: str, lines) -> None:
        text = "\n".join(f"  {name} | {line}" for line in lines)
        if self.rich is not None:
            self.rich.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=sys.stderr, flush=True)


def _run(client, request, progress: _Progress, pins: list | None = None,
         summaries: list | None = None) -> builder_pb2.BuildResult:
    """The build's result; the resolver's pins (and its summary) streamed before it are appended to ``pins``
    (``summaries``) when given."""
    result = None
    try:
        for event in client.resolve_and_build(request):
            progress(event)
            if pins is not None and event.WhichOneof("event") == "resolve" \
                    and event.resolve.WhichOneof("event") == "pin":
                pins.append(event.resolve.pin)
            if summaries is not None and event.WhichOneof("event") == "resolve" \
                    and event.resolve.WhichOneof("event") == "summary":
                summaries.append(event.resolve.summary)
            if event.WhichOneof("event") == "build" and event.build.WhichOneof("event") == "result":
                result = event.build.result
    finally:
        progress.close()
    if result is None:
        raise CallError("INTERNAL", "the build stream ended without a result")
    return result


def _refuse_unsigned(args, pins: list, summaries: list, result: builder_pb2.BuildResult) -> int:
    """With ``--trusted-key``: 0 when a trusted key signed both the resolution the builder streamed and its
    answer (the artifacts, for that lock key and target), else exit 1 naming why (a bad key file: exit 2)."""
    if not getattr(args, "trusted_key", None):
        return EXIT_OK
    from venvsmith.cli import check_signed
    from venvsmith.cli.security_args import signing_keys
    from venvsmith.core.signed_build import check_result
    from venvsmith.core.signing import UntrustedAnswer
    from venvsmith.core.target import target_digest

    summary = summaries[-1] if summaries else resolver_pb2.ResolveSummary()
    response = resolver_pb2.ResolveResponse(
        pins=pins, lock_key=summary.lock_key, requirements_txt=summary.requirements_txt,
        pylock_toml=summary.pylock_toml, environment=summary.environment,
        signature=summary.signature if summary.HasField("signature") else None)
    refused = check_signed(args, response)
    if refused:
        return refused
    _, trusted = signing_keys(args)
    try:
        check_result(result, trusted)
        env = summary.environment
        if result.lock_key != summary.lock_key or result.target_digest != target_digest(env.markers, env.tags):
            raise UntrustedAnswer(f"build result {result.lock_key[:64]}",
                                  f"it is for another lock key or target than the resolution ({summary.lock_key})")
    except UntrustedAnswer as exc:
        print(f"error: refusing the answer: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _ref_dict(ref: common_pb2.ArtifactRef) -> dict:
    return {"digest": f"sha256:{ref.digest.hash}/{ref.digest.size_bytes}", "filename": ref.filename,
            "media_type": ref.media_type, "kind": common_pb2.ArtifactKind.Name(ref.kind).lower(),
            "http_url": ref.http_url}


def cmd_build(args) -> int:
    resolve, options, _ = _options(args, venv=not args.no_venv, wheelhouse=not args.no_wheelhouse)
    pins: list = []
    summaries: list = []
    with _builder(args) as client:
        result = _run(client, builder_pb2.ResolveAndBuildRequest(resolve=resolve, options=options),
                      _Progress(args.quiet, _verbose(args)), pins, summaries)
    refused = _refuse_unsigned(args, pins, summaries, result)
    if refused:
        return refused
    refs = [*result.wheels]
    for field in ("wheelhouse", "venv_archive", "lock_file"):
        if result.HasField(field):
            refs.append(getattr(result, field))
    if args.format == "json":
        doc = {"lock_key": result.lock_key, "artifacts": [_ref_dict(r) for r in refs],
               "stats": {"elapsed_ms": round(result.stats.elapsed_ms, 1), "cached": result.stats.cached,
                         "wheels_downloaded": result.stats.wheels_downloaded,
                         "wheels_built": result.stats.wheels_built, "wheels_cached": result.stats.wheels_cached,
                         "shared_in_flight": result.stats.shared_in_flight,
                         "venv_built": result.stats.venv_built}}
        if result.HasField("interpreter"):
            doc["interpreter"] = {"path": result.interpreter.path, "version": result.interpreter.version,
                                  "implementation": result.interpreter.implementation,
                                  "identity": result.interpreter.identity}
        print(json.dumps(doc, indent=2))
    else:
        for ref in refs:
            kind = common_pb2.ArtifactKind.Name(ref.kind).lower()
            print(f"{kind:<13} sha256:{ref.digest.hash}/{ref.digest.size_bytes}  {ref.filename}")
        print(f"# lock key {result.lock_key}, {result.stats.elapsed_ms:.0f} ms"
              + (" (cached)" if result.stats.cached else ""))
    return EXIT_OK


def cmd_venv(args) -> int:
    started = time.perf_counter()
    dest = Path(args.path)
    link_mode = args.link_mode or os.environ.get("VENVSMITH_LINK_MODE") or "hardlink"
    if link_mode not in LINK_MODES:
        print(f"error: VENVSMITH_LINK_MODE={link_mode!r}: not one of {', '.join(LINK_MODES)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    occupied = dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir())))
    if occupied and not args.clear:
        print(f"error: {dest} exists and is not an empty directory (--clear removes what is in it first)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    from venvsmith.cli import node_cache

    try:
        node = node_cache.requested(args)  # checked before anything is built
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    resolve, options, own_request = _options(args, venv=True, wheelhouse=False)
    request = builder_pb2.ResolveAndBuildRequest(resolve=resolve, options=options)
    from venvsmith.cli import client_cache  # what a node cache keeps for the next pod (probe, verdict, answer)

    kept = client_cache.kept_answer(args, request, own_request) if node is not None else None
    if kept is not None and node is not None and node.cache.entry(kept.result.venv_archive.digest.hash).tree.is_dir():
        try:  # the node has the environment of an answer that has not expired: no call to the server at all
            return _place_venv(args, None, kept.result, kept.pins, node, dest, occupied, own_request, started,
                               link_mode, ", the node's kept answer")
        except _NeedsServer:
            pass  # the entry went (evicted, or damaged and removed) in between: ask the server
        except CallError as exc:
            if exc.status != "FAILED_PRECONDITION":
                raise
            # the host changed since (another interpreter at that path): the server may answer differently now
    pins: list = []
    summaries: list = []
    with _builder(args) as client:
        result = _run(client, request, _Progress(args.quiet, _verbose(args)), pins, summaries)
        refused = _refuse_unsigned(args, pins, summaries, result)  # before anything is unpacked
        if refused:
            return refused
        if node is not None:
            client_cache.keep_answer(args, request, own_request, pins, summaries, result)
        return _place_venv(args, client, result, pins, node, dest, occupied, own_request, started, link_mode)


class _NeedsServer(Exception):
    """A kept answer's environment must be fetched after all: the node cache lost it."""


def _place_venv(args, client, result: builder_pb2.BuildResult, pins: list, node, dest: Path, occupied: bool,
                own_request: resolver_pb2.ResolveRequest, started: float, link_mode: str, how: str = "") -> int:
    """The venv of ``result`` (and ``pins``) at ``dest``: its interpreter and (unless ``--no-verify``) its pins
    checked first; from the node cache, the local store or the server (``client``; None: a kept answer, whose
    fetch raises :class:`_NeedsServer`)."""
    from builder_service.errors import UnsafeArchive
    from venvsmith.cli import client_cache

    archive = result.venv_archive
    probes = client_cache.probe_cache(args)
    check_base_interpreter(result.interpreter, probes)  # before anything is unpacked
    if args.server and not args.no_verify \
            and not client_cache.known_valid(args, own_request, pins, result.interpreter):
        # a remote answer is checked against our own indexes first
        from venvsmith.cli.verify import report, verify_answer

        verdict = verify_answer(args, own_request, pins, result.interpreter.path, probes)
        if not verdict.valid:
            report(verdict, True, f"the answer of {args.server} ({plural(len(pins), 'pin')})")
            print("error: nothing unpacked (--no-verify skips this check)", file=sys.stderr)
            return EXIT_FAILED
        client_cache.remember_valid(args, own_request, pins, result.interpreter)
    local = client.local_path(archive) if client is not None else None
    if occupied:  # only now, once there is a venv to put in its place
        clear_directory(dest)
    fill = venv_filler(client, archive, local, sealed=node is not None)
    placed = ""
    try:
        if node is not None:
            from venvsmith.clients.node_cache import NodeCacheError

            try:
                placement = node.place(archive.digest.hash, dest, fill)
            except NodeCacheError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_BAD_INPUT
            placed = f", {placement.how} from the node cache" + (" (filled)" if placement.filled else "")
        elif local is not None:
            from builder_service.materialize import materialize
            from venvsmith.core.config import venvsmith_home

            materialize(local, archive.digest.hash, dest, venvsmith_home() / "venvs", link_mode,
                        note=lambda message: print(f"warning: {message}", file=sys.stderr, flush=True))
        else:
            fill(dest)
    except UnsafeArchive as exc:
        raise CallError.of(exc) from None
    elapsed = time.perf_counter() - started
    print(f"venv ready at {dest} ({plural(len(result.wheels), 'package')}, lock key {result.lock_key}, "
          f"{elapsed:.2f} s{', from the store' if result.stats.cached else ''}{placed}{how})")
    return EXIT_OK


def venv_filler(client, archive: common_pb2.ArtifactRef, local: Path | None,
                sealed: bool = False) -> Callable[[Path], dict | None]:
    """``fill(tree)``: the venv archive ``archive`` unpacked at ``tree`` (absent or an empty directory), from the
    local store's copy (``local``) or streamed from the server (unpacked while it downloads, digest verified before
    the staging directory becomes ``tree``). The only place that knows how a venv's bytes arrive: the node cache
    fills its entries with it (``sealed``: the tree made read-only and its manifest answered, as
    :data:`~venvsmith.clients.node_cache.Filler` says), the remote path its PATH."""

    def fill(tree: Path) -> dict | None:
        if client is None:
            raise _NeedsServer(archive.digest.hash)
        if local is not None:
            from builder_service.archive import unpack

            files = unpack(local, tree, read_only=sealed)
        else:
            from venvsmith.clients.stream_unpack import receive_venv  # downloaded and unpacked at once, staged

            files = receive_venv(client, archive, tree, read_only=sealed,
                                 note=lambda message: print(f"note: {message}", file=sys.stderr, flush=True))
        return files if sealed else None

    return fill


def clear_directory(path: Path) -> None:
    """Empty ``path`` for ``venv --clear``: a symlink or file there is unlinked; in a directory, every entry is
    removed without following symlinks (a link to a directory outside loses the link, never the directory)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    from builder_service.trees import empty_directory

    empty_directory(path)


def cmd_fetch(args) -> int:
    from builder_service.digest import Digest
    from builder_service.errors import InvalidDigest

    try:
        digest = Digest.parse(args.ref)
    except InvalidDigest as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    dest = Path(args.dest)
    wanted = common_pb2.Digest(hash=digest.hash, size_bytes=digest.size_bytes)
    with _builder(args) as client:
        if dest.is_dir():  # into a directory: under the name the build gave the artifact, else its hash
            ref = client.describe(wanted)
            name = safe_filename(ref.filename) if ref is not None else None
            dest = dest / (name or digest.hash)
        client.fetch(wanted, dest)
    print(dest)
    return EXIT_OK


def safe_filename(name: str) -> str | None:
    """``name`` when it is a plain file name to create in a directory (no separator, not hidden, no control
    character), else None: the server's word is never a path."""
    if not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name \
            or any(ord(c) < 32 or ord(c) == 127 for c in name) or len(name.encode()) > 255:
        return None
    return name


def _builder_metrics(engine) -> dict[str, float]:
    """The store's size and counters, and (with an oci:// store, a Redis cache) what the fleet shared, read at
    each scrape."""
    stats = engine.store.stats
    workspace = engine.workspace
    values = {
        "venvsmith_store_bytes": engine.store.usage(),
        "venvsmith_store_evictions_total": stats.evicted,
        "venvsmith_store_evicted_bytes_total": stats.evicted_bytes,
        "venvsmith_store_writes_total": stats.writes,
        "venvsmith_downloads_total": engine.counters["downloads"],
    }
    shared = workspace.shared_actions
    if shared is not None:
        values.update({
            "venvsmith_registry_action_hits_total": engine.actions.adopted,
            "venvsmith_registry_actions_published_total": shared.published,
            "venvsmith_registry_env_hits_total": engine.counters["venv_registry_hits"],
            "venvsmith_registry_blobs_pulled_total": shared.store.pulled,
            "venvsmith_registry_blobs_pushed_total": shared.store.pushed,
        })
    if workspace.fleet is not None:
        values["venvsmith_fleet_builds_joined_total"] = workspace.fleet.joined
    return values


def cmd_serve_builder(args) -> int:
    from builder_service.http_server import BlobHttpServer
    from builder_service.sandbox import SandboxUnavailable, choose_sandbox
    from builder_service.service import make_server
    from venvsmith.cli import serve_options, serve_start
    from venvsmith.cli.compose import builder_server_engines
    from venvsmith.cli.security_args import client_security
    from venvsmith.core import observe
    from venvsmith.core.config import venvsmith_home

    start = serve_start.prepare(args)
    os.environ["VENVSMITH_MIN_FREE_SPACE"] = args.min_free_space  # read by BuilderSettings (the store's floor)
    if args.store:  # read by BuilderSettings (which store)
        os.environ["VENVSMITH_STORE"] = args.store
    if args.store_ca:
        os.environ["VENVSMITH_STORE_CA"] = args.store_ca
    try:
        sandbox = choose_sandbox(getattr(args, "sandbox", "auto"), hidden=[venvsmith_home()])
    except SandboxUnavailable as exc:
        raise serve_start.StartupError(exc.message) from None
    engine, also, closing = builder_server_engines(args.resolver, client_security(args, args.resolver),
                                                   allow=start.allow, sandbox=sandbox, signer=start.signer,
                                                   trusted=start.trusted)
    http = None

    def close_all() -> None:
        if http is not None:
            http.stop()
        engine.close()
        for other in closing:
            other.close()

    if args.http_port is not None:
        from venvsmith.cli.listen import listening

        try:
            http = listening("--http-port", args.host, args.http_port, lambda: BlobHttpServer(
                engine, args.host, args.http_port, tokens=start.security.tokens, tls=start.security.tls,
                public_url=getattr(args, "public_url", None)).start())
        except Exception:
            close_all()
            raise
        engine.settings.http_base_url = http.base_url
        from venvsmith.core.public_url import url_host

        serve_options.announce(args, f"HTTP endpoint on {url_host(args.host)}:{http.port}; artifact URLs are "
                                     f"{http.base_url} ({http.why})")
    elif getattr(args, "public_url", None):
        serve_options.announce(args, "--public-url is ignored: there is no HTTP endpoint (--http-port)")
    server, port = serve_start.listen(
        start, args.port, lambda address: make_server(address, engine, also, security=start.security,
                                                      limits=start.limits), close_all)
    observe.add_source(engine, _builder_metrics)
    return serve_start.run(args, start, server, close_all, [
        f"venvsmith builder listening on {start.host}:{port}" + (f" (http {http.base_url})" if http else ""),
        f"build sandbox: {sandbox.name}" + (" (builds run unsandboxed)" if sandbox.name == "none" else ""),
    ])
