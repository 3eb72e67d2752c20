"""What the builder's two halves share: settings, the store and action cache, a work directory, a thread pool, the
HTTP client, the interpreters on this host, and a stored blob's path.

:class:`~builder_service.wheels.Wheels` and :class:`~builder_service.environments.Environments` work on one
:class:`Workspace`; :class:`~builder_service.engine.BuildEngine` composes the three.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from venvsmith.core.config import PipIndexConfig, effective_pip_config, venvsmith_home
from venvsmith.core.convert import target_to_proto
from venvsmith.core.fleet.cache_url import parse_cache_url
from venvsmith.core.fleet.flight import DEFAULT_LEASE_SECONDS, FleetFlight
from venvsmith.core.fleet.shared_cache import RedisTier
from venvsmith.core.health import HealthState
from venvsmith.core.index.allowlist import AllowList
from venvsmith.core.interpreters import (
    BaseInterpreter,
    Interpreter,
    QueryCache,
    cached_identify,
    discover_interpreters,
    file_identity,
)
from venvsmith.core.jsonlog import ContextThreadPool
from venvsmith.core.target import TargetEnvironment
from venvsmith.v1 import builder_pb2

from .action_cache import FilesystemActionCache, OutputRef
from .digest import Digest
from .errors import BuilderError
from .limits import BuildLimits
from .sandbox import Sandbox, preferred_sandbox
from .store import FilesystemStore
from .store.choice import open_store
from .store.disk_guard import DEFAULT_MIN_FREE_SPACE, parse_free_space
from .store.oci import RegistryStore

if TYPE_CHECKING:
    from venvsmith.core.index.http import HttpClient
    from venvsmith.core.signing import Signer, SigningKeyFile, TrustedKeys

    from .registry_actions import RegistryActions

try:  # POSIX: a work directory's lock tells a live process's directory from a dead one's
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

WHEEL_MEDIA = "application/zip"
ZSTD_MEDIA = "application/zstd"
TEXT_MEDIA = "text/plain; charset=utf-8"

@dataclass
class BuilderSettings:
    """Server-side configuration of the builder."""

    home: Path = field(default_factory=venvsmith_home)
    max_store_bytes: int | None = field(
        default_factory=lambda: int(os.environ["VENVSMITH_STORE_MAX_BYTES"])
        if os.environ.get("VENVSMITH_STORE_MAX_BYTES") else None
    )
    #: The free disk space the store keeps (``serve builder --min-free-space``; ``VENVSMITH_MIN_FREE_SPACE``):
    #: a write evicts first, then is refused STORE_FULL (:mod:`~builder_service.store.disk_guard`).
    min_free_space: str = field(default_factory=lambda: os.environ.get("VENVSMITH_MIN_FREE_SPACE")
                                or DEFAULT_MIN_FREE_SPACE)
    #: ``serve builder --store URL`` (``VENVSMITH_STORE``): ``""`` or ``file:///PATH`` the filesystem store,
    #: ``oci://HOST:PORT/REPO-PREFIX`` an OCI registry in front of it (:mod:`~builder_service.store.choice`).
    store: str = field(default_factory=lambda: os.environ.get("VENVSMITH_STORE", ""))
    #: ``serve builder --store-ca FILE`` (``VENVSMITH_STORE_CA``): the CA bundle of an oci:// store's HTTPS.
    store_ca: str = field(default_factory=lambda: os.environ.get("VENVSMITH_STORE_CA", ""))
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
    #: Where pinned files (and the indexes a request names) may be fetched from, redirects included; a server's
    #: is its operator's (``serve --allow-index``), the embedded CLI's everything.
    allow: AllowList = field(default_factory=AllowList.everything)
    #: What sdist builds run in (:mod:`~builder_service.sandbox`); ``None``: the strongest that works here, else
    #: none (with a warning). ``serve builder`` passes the one ``--sandbox`` chose, which refuses to fall back.
    sandbox: Sandbox | None = None
    #: Signs every action-cache entry written (``serve builder --signing-key``); None: unsigned entries.
    signer: Signer | SigningKeyFile | None = None
    #: ``serve builder --trusted-key``: an action-cache entry not signed by one of these keys (or ``signer``'s)
    #: is a miss; None: every entry counts.
    trusted: TrustedKeys | None = None
    #: ``--cache URL`` (``VENVSMITH_CACHE``, :mod:`venvsmith.core.fleet.cache_url`): with ``redis://...`` and an
    #: ``oci://`` store, builds are single-flighted across the replicas given the same URLs (one replica builds,
    #: the others wait for its result in the registry); ``sqlite:///DIR`` or empty: this process's only.
    cache: str = field(default_factory=lambda: os.environ.get("VENVSMITH_CACHE", ""))
    #: ``serve builder --cache-ca FILE`` (``VENVSMITH_CACHE_CA``): the CA bundle of a rediss:// cache.
    cache_ca: str = field(default_factory=lambda: os.environ.get("VENVSMITH_CACHE_CA", ""))
    #: Lifetime of a cross-replica build lease (``VENVSMITH_LEASE_SECONDS``; renewed while its holder works, a
    #: crashed holder's lapses and a waiting replica takes the build over).
    lease_seconds: float = field(
        default_factory=lambda: float(os.environ.get("VENVSMITH_LEASE_SECONDS", DEFAULT_LEASE_SECONDS))
    )
    #: The Redis tier of ``cache`` when another engine of this process has one already (a co-hosted resolver's):
    #: used instead of a second connection (its health is that engine's).
    redis: RedisTier | None = None


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


class Workspace:
    """The resources of one builder process; thread-safe."""

    def __init__(self, settings: BuilderSettings) -> None:
        self.settings = settings
        home = settings.home
        self.store: FilesystemStore = open_store(settings.store, home, ca_file=settings.store_ca,
                                                 max_bytes=settings.max_store_bytes,
                                                 min_free=parse_free_space(settings.min_free_space))
        #: Whether this builder can serve (NOT_SERVING while a cache file is corrupt and cannot be replaced).
        self.health = HealthState()
        self.actions = FilesystemActionCache(home / "actions", self.store, health=self.health,
                                             signer=settings.signer, trusted=settings.trusted)
        self._own_redis: RedisTier | None = None
        self.shared_actions: RegistryActions | None = None
        self.fleet: FleetFlight | None = None
        self._share(settings)
        self._local: TargetEnvironment | None = None
        self._http: HttpClient | None = None
        #: This process's work directory (downloads, sdist builds, venvs), locked while the process lives.
        self.tmp, self._tmp_lock = claim_work_dir(home / "tmp")
        self.pool = ContextThreadPool(settings.workers, thread_name_prefix="build")
        #: The sandbox of this builder's sdist builds; its home (store, keys, configuration) is hidden from them.
        self.sandbox: Sandbox = settings.sandbox or preferred_sandbox(hidden=[home])
        self._found: list[Interpreter] | None = None
        self._query_cache = QueryCache(home / "interpreters.json")
        self._lock = threading.Lock()
        #: environment_of's answers by file identity: parsing hundreds of tags again on every build request
        #: (each asks for its interpreter) was a tenth of a repeat ResolveAndBuild's time.
        self._environments: dict[str, TargetEnvironment] = {}
        self.counters = {"venv_builds": 0, "sdist_builds": 0, "downloads": 0, "venv_registry_hits": 0}

    def _share(self, settings: BuilderSettings) -> None:
        """With an oci:// store, the action results are the fleet's (:mod:`~builder_service.registry_actions`);
        with a Redis ``cache`` too, builds are single-flighted across the replicas (a fleet flight over a local
        action cache would only serialise replicas that then build again: not made)."""
        if not isinstance(self.store, RegistryStore):
            return
        from .registry_actions import RegistryActions

        self.shared_actions = RegistryActions(self.store)
        self.actions.shared = self.shared_actions
        location = parse_cache_url(settings.cache)
        tier = settings.redis
        if tier is None and location.redis_url is not None:
            tier = self._own_redis = RedisTier(location.redis_url, health=self.health,
                                               description=location.describe(), ca_file=settings.cache_ca or None)
        if tier is not None:
            self.fleet = self.actions.fleet = FleetFlight(tier, settings.lease_seconds)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self._own_redis is not None:
            self._own_redis.close()
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

                self._http = HttpClient(ca_bundle=self.settings.pip.cert, client_cert=self.settings.pip.client_cert,
                                        allow=self.settings.allow)
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
            known = self._environments.get(identity)
            held = self._query_cache.get(identity, "environment") if known is None else None
        if known is not None:
            return known
        if held is not None:
            env = TargetEnvironment.from_mapping(held["markers"], held["tags"], interpreter=str(interp.path))
        else:
            env = TargetEnvironment.from_interpreter(interp.path, cache=self._query_cache)  # one probe per binary
            with self._lock:
                self._query_cache.put(identity, "environment",
                                      {"markers": dict(env.markers), "tags": [str(t) for t in env.tags]})
                self._query_cache.save()
        with self._lock:
            self._environments[identity] = env
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

    def base_interpreter(self, path: Path) -> BaseInterpreter:
        """What a venv made with ``path`` depends on (kept while its binary is unchanged)."""
        with self._lock:
            found = cached_identify(path, self._query_cache)
        if found is None:
            raise BuilderError("FAILED_PRECONDITION", f"the interpreter {path} cannot be run to identify it")
        return found

    # -- blobs ----------------------------------------------------------------------------------------

    def limits(self, options: builder_pb2.BuildOptions) -> BuildLimits:
        """The request's build limits, each capped by (and when unset, equal to) this builder's own."""
        base = self.settings.limits
        lim = options.limits
        return BuildLimits(
            timeout_seconds=min(lim.timeout_seconds or base.timeout_seconds, base.timeout_seconds),
            memory_bytes=min(lim.memory_bytes or base.memory_bytes, base.memory_bytes),
            max_output_bytes=min(lim.max_output_bytes or base.max_output_bytes, base.max_output_bytes),
            max_log_bytes=base.max_log_bytes,
        )

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
