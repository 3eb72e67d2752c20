"""The builder as a service: pinned set in, content-addressed artifacts out.

Both transports use it: the gRPC servicer and the CLI's embedded mode. Every expensive step is keyed in the
action cache (Bazel's ActionCache) and single-flighted: a wheel by its file's sha256, a built wheel by its
build key, a venv archive by the lock key (exact pins + target environment) plus its base interpreter and
options — never by a fuzzy request.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename

from venvsmith.core.config import PipIndexConfig, effective_pip_config, venvsmith_home
from venvsmith.core.convert import target_to_proto
from venvsmith.core.errors import ServiceError
from venvsmith.core.index.auth import Auth
from venvsmith.core.index.settings import settings_from_config
from venvsmith.core.interpreters import (
    BaseInterpreter,
    Interpreter,
    QueryCache,
    cached_identify,
    discover_interpreters,
    file_identity,
)
from venvsmith.core.pin import Pin, requirements_txt
from venvsmith.core.resolution import CallError, ResolverClient
from venvsmith.core.target import TargetEnvironment
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2

from .action_cache import ActionResult, FilesystemActionCache, Outcome, OutputRef
from .archive import pack
from .digest import Digest
from .errors import BuilderError, SdistFailed
from .limits import BuildLimits
from .store import FilesystemStore
from .store.reader import verify_blobs

if TYPE_CHECKING:
    from venvsmith.core.distfile import DistFile
    from venvsmith.core.index.http import HttpClient

    from .build_env import ResolvingBuildEnv
    from .fetch import Fetcher, Progress

# Building (sdists, venvs, fetching) is imported where it is first needed: a repeat request answered from the
# action cache needs none of it.

try:  # POSIX: a work directory's lock tells a live process's directory from a dead one's
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

WHEEL_MEDIA = "application/zip"
ZSTD_MEDIA = "application/zstd"
TEXT_MEDIA = "text/plain; charset=utf-8"
#: Nested sdist builds (a build requirement that is itself only an sdist) are allowed this deep.
MAX_BUILD_DEPTH = 3
#: Rounds of fetching an sdist that the store keeps evicting before the build gives up.
SDIST_ATTEMPTS = 3


@dataclass
class BuilderSettings:
    """Server-side configuration of the builder."""

    home: Path = field(default_factory=venvsmith_home)
    max_store_bytes: int | None = field(
        default_factory=lambda: int(os.environ["VENVSMITH_STORE_MAX_BYTES"])
        if os.environ.get("VENVSMITH_STORE_MAX_BYTES") else None
    )
    workers: int = 8
    limits: BuildLimits = field(default_factory=BuildLimits)
    #: pip's index configuration on this host, completing a request's ``IndexConfig`` (unless it is isolated).
    pip: PipIndexConfig = field(default_factory=effective_pip_config)
    #: Base URL of the HTTP endpoint serving blobs ("http://host:port/"), when one runs.
    http_base_url: str = ""
    #: Where a venv tree just built and packed is kept as the unpacked template of its archive
    #: (:mod:`~builder_service.materialize`), instead of being deleted: the embedded CLI places venvs from
    #: there, so its first build need not unpack what it has just packed. ``None``: not kept (a server).
    templates: Path | None = None


def claim_work_dir(root: Path) -> tuple[Path, int | None]:
    """A fresh work directory under ``root`` for this process, and the descriptor holding its lock.

    Work directories of processes that are gone (a builder killed mid-build leaves its build trees behind) are
    removed first: each directory is ``flock``-ed by its owner for the owner's lifetime, so one that can be locked
    has no owner. A directory is locked before it is given its ``proc-`` name, so a concurrent sweep never takes
    a new one for dead. Without ``fcntl`` (Windows) nothing is swept.
    """
    root.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        return Path(tempfile.mkdtemp(prefix="proc-", dir=root)), None
    for entry in os.scandir(root):
        if not entry.name.startswith("proc-") or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its process is alive
        try:
            from .sdist_build import remove_tree

            remove_tree(Path(entry.path))
        finally:
            os.close(fd)
    claim = Path(tempfile.mkdtemp(prefix=".claim-", dir=root))
    fd = os.open(claim, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    mine = root / f"proc-{os.getpid()}-{claim.name.removeprefix('.claim-')}"
    os.rename(claim, mine)
    return mine, fd


def ref_to_proto(out: OutputRef, http_base_url: str = "", lock_key: str = "") -> common_pb2.ArtifactRef:
    kinds = {
        "wheel": common_pb2.WHEEL, "wheelhouse": common_pb2.WHEELHOUSE,
        "venv_archive": common_pb2.VENV_ARCHIVE, "lock_file": common_pb2.LOCK_FILE,
    }
    url = ""
    if http_base_url:
        url = f"{http_base_url}blobs/{out.digest.hash}/{out.digest.size_bytes}/{out.filename}"
    return common_pb2.ArtifactRef(
        digest=common_pb2.Digest(hash=out.digest.hash, size_bytes=out.digest.size_bytes),
        media_type=out.media_type,
        kind=kinds.get(out.kind, common_pb2.ARTIFACT_KIND_UNSPECIFIED),
        filename=out.filename,
        http_url=url,
        lock_key=lock_key,
    )


@contextmanager
def building_sdist(pin: Pin, doing: str) -> Iterator[None]:
    """Report a failure of ``doing`` the sdist of ``pin`` as an :class:`SdistFailed` that names the sdist's file and
    keeps its status, reason, details and build-log tail: the call stops with it (as pip and uv stop), never tries
    another version.
    """
    try:
        yield
    except (ServiceError, CallError) as exc:
        if pin.file.filename in exc.message:  # said already (a nested build names its own sdist)
            raise
        raise SdistFailed(pin.file.filename, doing, exc) from exc


class BuildEngine:
    """Builds pinned sets; thread-safe; one per process.

    ``resolver`` resolves build requirements (and ResolveAndBuild's requests): any
    :class:`~venvsmith.core.resolution.ResolverClient`, embedded or remote, chosen by the composer (the CLI); the
    engine neither owns nor closes it. The engine is itself a
    :class:`~venvsmith.core.resolution.MetadataPreparer` (:meth:`prepare`), for a resolver to be given.
    """

    description = "embedded builder"

    def __init__(self, settings: BuilderSettings | None = None, resolver: ResolverClient | None = None) -> None:
        self.settings = settings or BuilderSettings()
        home = self.settings.home
        self.store = FilesystemStore(home / "store", max_bytes=self.settings.max_store_bytes)
        self.actions = FilesystemActionCache(home / "actions", self.store)
        self.resolver = resolver
        self._local: TargetEnvironment | None = None
        self._http: HttpClient | None = None
        #: This process's work directory (downloads, sdist builds, venvs), locked while the process lives.
        self.tmp, self._tmp_lock = claim_work_dir(home / "tmp")
        self.pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="build")
        self._found: list[Interpreter] | None = None
        self._query_cache = QueryCache(home / "interpreters.json")
        self._lock = threading.Lock()
        self.counters = {"venv_builds": 0, "sdist_builds": 0, "downloads": 0}

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self._http is not None:
            self._http.close()
        try:
            self.tmp.rmdir()  # only when empty: work still running keeps it (the next start removes it)
        except OSError:
            pass
        if self._tmp_lock is not None:
            os.close(self._tmp_lock)
            self._tmp_lock = None

    def count(self, what: str) -> None:
        with self._lock:
            self.counters[what] += 1

    @property
    def local(self) -> TargetEnvironment:
        """This process's own target environment (an unset target spec means it)."""
        if self._local is None:
            self._local = TargetEnvironment.from_local()
        return self._local

    @property
    def http(self) -> HttpClient:
        """The pooled HTTP client downloads go through (made on first use)."""
        with self._lock:
            if self._http is None:
                from venvsmith.core.index.http import HttpClient

                self._http = HttpClient(ca_bundle=self.settings.pip.cert, client_cert=self.settings.pip.client_cert)
            return self._http

    # -- interpreters ------------------------------------------------------------------------------

    def _discovered(self) -> list[Interpreter]:
        with self._lock:
            if self._found is None:
                self._found = discover_interpreters(cache=self._query_cache)
            return self._found

    def environment_of(self, interp: Interpreter) -> TargetEnvironment:
        """The interpreter's target environment, cached on disk while its binary is unchanged."""
        identity = file_identity(interp.path)
        with self._lock:
            held = self._query_cache.get(identity, "environment")
        if held is not None:
            return TargetEnvironment.from_mapping(held["markers"], held["tags"], interpreter=str(interp.path))
        env = TargetEnvironment.from_interpreter(interp.path, cache=self._query_cache)  # one probe per binary
        with self._lock:
            self._query_cache.put(identity, "environment",
                                  {"markers": dict(env.markers), "tags": [str(t) for t in env.tags]})
            self._query_cache.save()
        return env

    def interpreters(self) -> list[tuple[Interpreter, TargetEnvironment]]:
        """Discovered interpreters with their environments (broken ones skipped)."""
        found = []
        for interp in self._discovered():
            try:
                found.append((interp, self.environment_of(interp)))
            except Exception:  # noqa: BLE001 - a broken interpreter is skipped, not fatal
                continue
        return found

    def interpreter_for(self, target: TargetEnvironment) -> Path:
        """An interpreter that can run ``target``'s venv: same implementation and X.Y, same platform."""
        want = target.markers
        keys = ("python_version", "implementation_name", "sys_platform", "platform_machine")
        for interp in self._discovered():
            if f"{interp.version.major}.{interp.version.minor}" != want.get("python_version"):
                continue
            try:
                have = self.environment_of(interp).markers
            except Exception:  # noqa: BLE001
                continue
            if all(have.get(k) == want.get(k) for k in keys):
                return interp.path
        raise BuilderError(
            "FAILED_PRECONDITION",
            f"no interpreter on this builder for Python {want.get('python_version')} "
            f"({want.get('implementation_name')}, {want.get('sys_platform')}/{want.get('platform_machine')}); "
            f"have: {', '.join(str(i.version) for i in self._discovered()) or 'none'}",
            reason="NO_INTERPRETER",
        )

    def list_environments(self) -> builder_pb2.ListEnvironmentsResponse:
        return builder_pb2.ListEnvironmentsResponse(
            environments=[target_to_proto(env) for _, env in self.interpreters()]
        )

    # -- wheels --------------------------------------------------------------------------------------

    def fetcher(self, index: common_pb2.IndexConfig) -> Fetcher:
        settings = settings_from_config(index, self.settings.pip, None)
        auth = Auth(settings.credentials, [*settings.indexes(), *settings.find_links])
        from .fetch import Fetcher

        return Fetcher(self.store, self.http, auth, self.tmp)

    def wheel_for(
        self,
        pin: Pin,
        *,
        target: TargetEnvironment,
        options: builder_pb2.BuildOptions,
        constraints: Sequence[str],
        fetcher: Fetcher,
        progress: Progress | None = None,
        building: Callable[[], None] | None = None,
        depth: int = 0,
    ) -> tuple[OutputRef, Outcome]:
        """The wheel of ``pin`` for ``target`` and how it came: ``"computed"`` (downloaded or built by this call),
        ``"shared"`` (a concurrent identical call did it) or ``"cached"`` (in the store before).

        Sdists are built once per build key; ``building()`` is called when a build really starts.
        """
        if pin.file.is_wheel:
            if target.best_tag_rank(pin.file.tags) is None:
                raise BuilderError("FAILED_PRECONDITION",
                                   f"{pin.file.filename} does not fit the target environment's tags",
                                   reason="WHEEL_INCOMPATIBLE")
            key = f"file:{pin.file.sha256}"

            def download() -> ActionResult:
                self.count("downloads")
                digest = fetcher.fetch(pin, progress)
                return ActionResult((OutputRef(digest, WHEEL_MEDIA, "wheel", pin.file.filename),))

            result, outcome = self.actions.get_or_compute_outcome(key, download)
            return result.outputs[0], outcome
        return self._built_wheel(pin, target, options, constraints, fetcher, progress, building, depth)

    @contextmanager
    def _sdist(self, pin: Pin, fetcher: Fetcher, progress: Progress | None) -> Iterator[Path]:
        """The verified sdist of ``pin`` in the store (downloaded once), pinned against eviction in the block.

        A corrupt stored sdist is DATA_LOSS (quarantined: fetched again next time).
        """
        for _ in range(SDIST_ATTEMPTS):
            result, _ = self.actions.get_or_compute(
                f"file:{pin.file.sha256}",
                lambda: ActionResult((OutputRef(fetcher.fetch(pin, progress), "application/octet-stream", "sdist",
                                                pin.file.filename),)),
            )
            digest = result.outputs[0].digest
            with self.store.pin([digest]):
                path = self.store.path(digest)  # None: evicted before the pin (the next round fetches it again)
                if path is not None:
                    verify_blobs(self.store, [digest])
                    yield path
                    return
        raise BuilderError("RESOURCE_EXHAUSTED", f"the store evicts {pin.file.filename} as soon as it is stored; "
                           "it is too small for this build", reason="STORE_FULL")

    def _static_build_requires(self, sdist_path: Path, options: builder_pb2.BuildOptions) -> list[str]:
        """``[build-system].requires`` of the sdist, read from its ``pyproject.toml`` without running anything."""
        from .sdist_build import extract_sdist, read_build_system

        with tempfile.TemporaryDirectory(dir=self.tmp) as work:
            source = extract_sdist(sdist_path, Path(work) / "src", max_bytes=self._limits(options).max_output_bytes)
            return list(read_build_system(source, sdist_path).requires)

    def build_requirement_names(self, pin: Pin, target: TargetEnvironment, options: builder_pb2.BuildOptions,
                                fetcher: Fetcher, progress: Progress | None = None) -> frozenset[NormalizedName]:
        """Projects the sdist of ``pin`` statically needs to build for ``target`` (markers evaluated there)."""
        names = set()
        with self._sdist(pin, fetcher, progress) as sdist_path:
            requires = self._static_build_requires(sdist_path, options)
        for text in requires:
            requirement = Requirement(text)  # read_build_system checked it parses
            if requirement.marker is None or target.evaluate(requirement.marker):
                names.add(canonicalize_name(requirement.name))
        return frozenset(names)

    def _build_env(self, sdist_path, target, options, constraints, fetcher, depth) -> tuple[ResolvingBuildEnv, list]:
        """A build-env provider for ``sdist_path`` and its static build requirements, resolved now."""
        from .build_env import ResolvingBuildEnv

        requires = self._static_build_requires(sdist_path, options)
        env = ResolvingBuildEnv(
            resolve=lambda reqs, cons: self._resolve_build(reqs, cons, target, options.index),
            wheel_path=lambda dep: self._dep_wheel_path(dep, target, options, constraints, fetcher, depth),
            constraints=constraints,
        )
        return env, [f"{p.name}=={p.version}" for p in env.preresolve(requires)]

    def _built_wheel(self, pin, target, options, constraints, fetcher, progress, building, depth
                     ) -> tuple[OutputRef, Outcome]:
        if depth > MAX_BUILD_DEPTH:
            raise BuilderError("FAILED_PRECONDITION", f"build requirements nest deeper than {MAX_BUILD_DEPTH} at {pin}")
        with self._sdist(pin, fetcher, progress) as sdist_path:
            return self._build_sdist(pin, sdist_path, target, options, constraints, fetcher, building, depth)

    def _build_sdist(self, pin, sdist_path, target, options, constraints, fetcher, building, depth
                     ) -> tuple[OutputRef, Outcome]:
        from .sdist_build import build_key, build_wheel

        interpreter = self.interpreter_for(target)
        with building_sdist(pin, "resolving the build requirements of"):
            env, build_pins = self._build_env(sdist_path, target, options, constraints, fetcher, depth)
        key = "wheel-build:" + build_key(pin.file.sha256, target.digest(), build_pins, dict(options.config_settings))

        def build() -> ActionResult:
            self.count("sdist_builds")
            if building is not None:
                building()
            with tempfile.TemporaryDirectory(dir=self.tmp) as out:
                outcome = build_wheel(
                    sdist_path, interpreter=interpreter, env_provider=env, out_dir=Path(out),
                    limits=self._limits(options), config_settings=dict(options.config_settings), work_dir=self.tmp,
                )
                tags = parse_wheel_filename(outcome.wheel.name)[3]
                if target.best_tag_rank(tags) is None:
                    raise BuilderError("FAILED_PRECONDITION",
                                       f"{pin.file.filename} built {outcome.wheel.name}, which does not fit the target",
                                       reason="WHEEL_INCOMPATIBLE")
                wheel = self.store.put_file(outcome.wheel)
                with self.store.pin([wheel]):  # storing the log must not evict the wheel
                    log = self.store.put_file(outcome.log)
            return ActionResult(
                (OutputRef(wheel, WHEEL_MEDIA, "wheel", outcome.wheel.name),),
                meta={"log": str(log), "build_requirements": " ".join(outcome.build_requirements)},
            )

        with building_sdist(pin, "building"):
            result, outcome = self.actions.get_or_compute_outcome(key, build)
        return result.outputs[0], outcome

    def prepare_metadata(self, pin: Pin, target: TargetEnvironment, options: builder_pb2.BuildOptions
                         ) -> tuple[OutputRef, bytes]:
        """Core metadata of an sdist with dynamic dependencies, by its backend in isolation; cached."""
        from .sdist_build import prepare_metadata

        if pin.file.is_wheel:
            raise BuilderError("INVALID_ARGUMENT", f"{pin.file.filename} is a wheel: its metadata is static")
        fetcher = self.fetcher(options.index)
        key = f"metadata:{pin.file.sha256}:{target.digest()}"

        def prepare() -> ActionResult:
            with self._sdist(pin, fetcher, None) as sdist_path:
                env, _ = self._build_env(sdist_path, target, options, [], fetcher, 0)
                data = prepare_metadata(sdist_path, interpreter=self.interpreter_for(target), env_provider=env,
                                        limits=self._limits(options), config_settings=dict(options.config_settings),
                                        work_dir=self.tmp)
            digest = self.store.put_bytes(data)
            return ActionResult((OutputRef(digest, "text/plain", "metadata", f"{pin.file.filename}.metadata"),))

        with building_sdist(pin, "preparing the metadata of"):
            ref = self.actions.get_or_compute(key, prepare)[0].outputs[0]
        with self.store.open(ref.digest) as fh:
            return ref, fh.read()

    def prepare(self, file: DistFile, target: TargetEnvironment, index: common_pb2.IndexConfig) -> bytes:
        """:class:`~venvsmith.core.resolution.MetadataPreparer`: :meth:`prepare_metadata` of one sdist."""
        pin = Pin(name=file.name, version=file.version, file=file)
        return self.prepare_metadata(pin, target, builder_pb2.BuildOptions(index=index))[1]

    def _limits(self, options: builder_pb2.BuildOptions) -> BuildLimits:
        base = self.settings.limits
        lim = options.limits
        return BuildLimits(
            timeout_seconds=lim.timeout_seconds or base.timeout_seconds,
            memory_bytes=lim.memory_bytes or base.memory_bytes,
            max_output_bytes=lim.max_output_bytes or base.max_output_bytes,
        )

    def _resolve_build(self, requirements, constraints, target, index) -> list[Pin]:
        """Build requirements resolved through :attr:`resolver` (a client: embedded or remote)."""
        from venvsmith.core.convert import pin_from_proto

        if self.resolver is None:
            raise BuilderError("FAILED_PRECONDITION", "this builder has no resolver for build requirements")
        request = resolver_pb2.ResolveRequest(
            requirements=list(requirements),
            constraints=[c for c in constraints if "[" not in c],
            target=common_pb2.TargetSpec(environment=target_to_proto(target)),
            index=index,
            options=common_pb2.ResolutionOptions(),
        )
        try:
            response = self.resolver.resolve(request)
        except CallError as exc:
            # The resolver's status, reason and details (a conflict's chains) go on; the message says where.
            raise CallError(exc.status, f"resolving build requirements: {exc.message}", exc.details) from None
        return [pin_from_proto(p) for p in response.pins]

    def _dep_wheel_path(self, pin, target, options, constraints, fetcher, depth) -> Path:
        ref, _ = self.wheel_for(pin, target=target, options=options, constraints=constraints, fetcher=fetcher,
                                depth=depth + 1)
        return self.named_wheel(ref)

    def named_wheel(self, ref: OutputRef) -> Path:
        """A path to the stored wheel under its real file name (installers read name and tags from it)."""
        link = self.settings.home / "named" / ref.digest.hash / ref.filename
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            tmp = link.with_name(f".{link.name}.{os.getpid()}.{threading.get_ident()}")
            os.symlink(self.stored_path(ref), tmp)
            os.replace(tmp, link)
        return link

    def stored_path(self, ref: OutputRef) -> Path:
        """Where the store keeps ``ref``'s blob; a blob evicted since it was stored is a store too small for the
        work at hand (a retry fetches or builds it again)."""
        path = self.store.path(ref.digest)
        if path is None:
            raise BuilderError("RESOURCE_EXHAUSTED", f"{ref.filename} was evicted from the store before it was used; "
                               "the store is too small for this build", reason="STORE_FULL")
        return path

    # -- whole sets -----------------------------------------------------------------------------------

    def base_interpreter(self, path: Path) -> BaseInterpreter:
        """What a venv made with ``path`` depends on (kept while its binary is unchanged)."""
        with self._lock:
            found = cached_identify(path, self._query_cache)
        if found is None:
            raise BuilderError("FAILED_PRECONDITION", f"the interpreter {path} cannot be run to identify it")
        return found

    def seed_wheel(self, interpreter: Path) -> OutputRef:
        """The pip wheel bundled with ``interpreter``'s ensurepip, in the store (``--seed``)."""
        from .venv import bundled_pip

        wheel = bundled_pip(interpreter)
        return OutputRef(self.store.put_file(wheel), WHEEL_MEDIA, "wheel", wheel.name)

    def venv_archive(self, lock_key: str, target: TargetEnvironment, wheels: Sequence[OutputRef],
                     compile_bytecode: bool, seed: bool = False) -> tuple[OutputRef, Outcome, BaseInterpreter]:
        """The relocatable venv of exactly these wheels (install order) for ``target``, keyed by the lock key, the
        base interpreter and the options (:class:`~builder_service.venv_key.VenvKey`); with how it came
        (``"computed"``, ``"shared"`` with a concurrent identical build, or ``"cached"``) and the interpreter.

        ``seed`` adds the pip bundled with the interpreter (unless a pin is pip already).
        """
        from .venv import build_venv
        from .venv_key import VenvKey

        interpreter = self.interpreter_for(target)
        base = self.base_interpreter(interpreter)
        installs = list(wheels)
        if seed and not any(parse_wheel_filename(w.filename)[0] == "pip" for w in wheels):
            installs.append(self.seed_wheel(interpreter))
        seeded = installs[len(wheels):]
        key = VenvKey(lock_key, base, compile_bytecode, seeded[0].digest.hash if seeded else "").key()

        def build() -> ActionResult:
            self.count("venv_builds")
            with tempfile.TemporaryDirectory(dir=self.tmp) as work, self.store.pin([w.digest for w in installs]):
                verify_blobs(self.store, [w.digest for w in installs])  # a corrupt wheel: DATA_LOSS, quarantined
                named = [self.named_wheel(w) for w in installs]
                venv = Path(work) / "venv"
                build_venv(interpreter, named, venv, compile_bytecode)
                archive = Path(work) / "venv.tar.zst"
                pack(venv, archive)
                digest = self.store.put_file(archive, link=True)
                if self.settings.templates is not None:
                    from .materialize import adopt_template

                    adopt_template(venv, digest.hash, self.settings.templates)
            return ActionResult((OutputRef(digest, ZSTD_MEDIA, "venv_archive", f"venv-{lock_key[:16]}.tar.zst"),),
                                meta={"lock_key": lock_key, "interpreter": base.path,
                                      "interpreter_identity": base.identity})

        result, outcome = self.actions.get_or_compute_outcome(key, build)
        return result.outputs[0], outcome, base

    def wheelhouse(self, lock_key: str, wheels: Sequence[OutputRef]) -> OutputRef:
        """A deterministic tar.zst of ``wheels/`` plus PEP 503 ``simple/`` pages."""
        from .wheelhouse import write_tree

        key = f"wheelhouse:{lock_key}"

        def build() -> ActionResult:
            with tempfile.TemporaryDirectory(dir=self.tmp) as work, self.store.pin([w.digest for w in wheels]):
                verify_blobs(self.store, [w.digest for w in wheels])
                tree = Path(work) / "wheelhouse"
                write_tree(tree, [(w.filename, w.digest.hash, self.stored_path(w)) for w in wheels])
                archive = Path(work) / "wheelhouse.tar.zst"
                pack(tree, archive)
                digest = self.store.put_file(archive, link=True)
            return ActionResult((OutputRef(digest, ZSTD_MEDIA, "wheelhouse", f"wheelhouse-{lock_key[:16]}.tar.zst"),))

        return self.actions.get_or_compute(key, build)[0].outputs[0]

    def remember_wheels(self, lock_key: str, wheels: Sequence[OutputRef]) -> None:
        """Record the wheels of a lock key (the HTTP endpoint serves them as a PEP 503 index)."""
        self.actions.put(f"wheels:{lock_key}", ActionResult(tuple(wheels), meta={"lock_key": lock_key}))

    def wheels_of(self, lock_key: str) -> list[OutputRef] | None:
        hit = self.actions.get(f"wheels:{lock_key}")
        return None if hit is None else list(hit.outputs)

    def lock_file(self, pins: Sequence[Pin], target: TargetEnvironment, lock_key: str) -> OutputRef:
        text = requirements_txt(pins, target, lock_key).encode()
        digest = self.store.put_bytes(text)
        return OutputRef(digest, TEXT_MEDIA, "lock_file", f"requirements-{lock_key[:16]}.txt")

    # -- blobs ----------------------------------------------------------------------------------------

    def fetch_to(self, ref: OutputRef | Digest, dest: Path) -> None:
        """Copy a blob to ``dest`` verifying its digest on the way."""
        digest = ref.digest if isinstance(ref, OutputRef) else ref
        tmp = dest.with_name(dest.name + ".part")
        with self.store.open(digest) as src:
            try:
                with open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            except BaseException:
                tmp.unlink(missing_ok=True)  # a corrupt blob (or a failed write): leave nothing behind
                raise
        os.replace(tmp, dest)
