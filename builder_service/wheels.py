"""Wheels of pins: a pinned wheel fetched, an sdist fetched and built in isolation (its build requirements resolved
through the resolver client), an sdist's dynamic metadata prepared by its backend.

Every step is an action keyed by what it depends on (:mod:`~builder_service.action_keys`) and single-flighted.
:class:`Wheels` is the builder's :class:`~venvsmith.core.resolution.MetadataPreparer` (:meth:`Wheels.prepare`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from venvsmith.core import observe
from venvsmith.core.convert import target_to_proto
from venvsmith.core.errors import Cancelled, ServiceError
from venvsmith.core.index.auth import Auth
from venvsmith.core.index.settings import settings_from_config
from venvsmith.core.pin import Pin
from venvsmith.core.resolution import CallError, ResolverClient
from venvsmith.core.target import TargetEnvironment
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2

from .action_cache import ActionResult, Outcome, OutputRef
from .action_keys import BuiltWheel, FetchedFile, PreparedMetadata, config_items
from .digest import Digest, file_sha256
from .errors import BuilderError, SdistFailed, UnsafeWheel
from .store.reader import verify_blobs
from .workspace import TEXT_MEDIA, WHEEL_MEDIA, Workspace

if TYPE_CHECKING:
    from venvsmith.core.distfile import DistFile

    from .build_env import ResolvingBuildEnv
    from .fetch import Fetcher, Progress

# Building and fetching are imported where first needed: a repeat request answered from the action cache needs
# none of it.

#: Nested sdist builds (a build requirement that is itself only an sdist) are allowed this deep.
MAX_BUILD_DEPTH = 3
#: Rounds of fetching an sdist that the store keeps evicting before the build gives up.
SDIST_ATTEMPTS = 3


def pinned_otherwise(installed: str, build_pins: Sequence[str], constraints: Sequence[str]) -> tuple[str, ...]:
    """The pinned set's pins (``constraints``) of the build requirements the backend asked for
    (``get_requires_for_build_wheel``) beyond the static ``build_pins``, when a build that ``installed`` those
    (``name==version`` separated by spaces, as recorded) has any of them at another version; else ``()``.

    They were resolved under that build's pinned set, which the static build key does not name.
    """
    static = {canonicalize_name(pin.partition("==")[0]) for pin in build_pins}
    asked = {canonicalize_name(name): Version(version) for name, _, version in
             (pin.partition("==") for pin in installed.split()) if canonicalize_name(name) not in static}
    pinned = {canonicalize_name(name): (Version(version), pin) for pin in constraints
              for name, sep, version in [pin.partition("==")] if sep and canonicalize_name(name) in asked}
    if all(asked[name] == version for name, (version, _) in pinned.items()):
        return ()
    return tuple(sorted(pin for _, pin in pinned.values()))


@contextmanager
def building_sdist(pin: Pin, doing: str) -> Iterator[None]:
    """Report a failure of ``doing`` the sdist of ``pin`` as an :class:`SdistFailed` that names the sdist's file and
    keeps its status, reason, details and build-log tail: the call stops with it (as pip and uv stop), never tries
    another version.
    """
    try:
        yield
    except Cancelled:
        raise  # nobody waits for it: not a failure of the sdist (a caller joining just then runs it again)
    except (ServiceError, CallError) as exc:
        if pin.file.filename in exc.message:  # said already (a nested build names its own sdist)
            raise
        raise SdistFailed(pin.file.filename, doing, exc) from exc


@dataclass
class BuildWatch:
    """What a caller follows of the sdist build behind a wheel: ``lines`` gets the build log's lines as they are
    written (only a build this call runs has any), and :attr:`log` is then the stored log of the build that made
    the wheel (this call's, or the earlier one's when the wheel came from the store)."""

    lines: Callable[[list[str]], None] | None = None
    log: OutputRef | None = None


class Wheels:
    """The wheel of a pin for a target: fetched, or built from its sdist; thread-safe.

    ``resolver`` resolves build requirements: any :class:`~venvsmith.core.resolution.ResolverClient`, embedded or
    remote, chosen by the composer (the CLI); never owned or closed here.
    """

    description = "embedded builder"

    def __init__(self, workspace: Workspace, resolver: ResolverClient | None) -> None:
        self.workspace = workspace
        self.resolver = resolver

    def fetcher(self, index: common_pb2.IndexConfig) -> Fetcher:
        """A fetcher of pinned files from ``index`` (completed by this host's pip configuration)."""
        ws = self.workspace
        settings = settings_from_config(index, ws.settings.pip, None)
        auth = Auth(settings.credentials, [*settings.indexes(), *settings.find_links])
        from .fetch import Fetcher

        return Fetcher(ws.store, ws.http, auth, ws.tmp, allow=ws.settings.allow)

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
        watch: BuildWatch | None = None,
    ) -> tuple[OutputRef, Outcome]:
        """The wheel of ``pin`` for ``target`` and how it came: ``"computed"`` (downloaded or built by this call),
        ``"shared"`` (a concurrent identical call did it) or ``"cached"`` (in the store before).

        Sdists are built once per build key; ``building()`` is called when a build really starts; ``watch``
        follows its log (see :class:`BuildWatch`).
        """
        if pin.file.is_wheel:
            if target.best_tag_rank(pin.file.tags) is None:
                raise BuilderError("FAILED_PRECONDITION",
                                   f"{pin.file.filename} does not fit the target environment's tags",
                                   reason="WHEEL_INCOMPATIBLE")

            def download() -> ActionResult:
                self.workspace.count("downloads")
                digest = fetcher.fetch(pin, progress)
                self._check_fetched_wheel(digest, pin.file.filename)
                return ActionResult((OutputRef(digest, WHEEL_MEDIA, "wheel", pin.file.filename),))

            key = FetchedFile(file_sha256(pin.file)).key()
            result, outcome = self.workspace.actions.get_or_compute_outcome(key, download)
            return result.outputs[0], outcome
        return self._built_wheel(pin, target, options, constraints, fetcher, progress, building, depth, watch)

    def _check_fetched_wheel(self, digest: Digest, filename: str) -> None:
        """A downloaded wheel enters the store's records only if it could be installed safely (the checks of
        :func:`~builder_service.install.check_wheel`): an unsafe one is deleted and FAILED_PRECONDITION."""
        from .install import check_wheel

        store = self.workspace.store
        with store.pin([digest]):
            path = store.path(digest)
            if path is None:
                raise BuilderError("RESOURCE_EXHAUSTED", f"the store evicted {filename} as soon as it was stored; "
                                   "it is too small for this build", reason="STORE_FULL")
            try:
                check_wheel(path, filename)
            except UnsafeWheel:
                store.delete(digest)
                raise

    @contextmanager
    def _sdist(self, pin: Pin, fetcher: Fetcher, progress: Progress | None) -> Iterator[Path]:
        """The verified sdist of ``pin`` in the store (downloaded once), pinned against eviction in the block.

        A corrupt stored sdist is DATA_LOSS (quarantined: fetched again next time).
        """
        store = self.workspace.store
        key = FetchedFile(file_sha256(pin.file)).key()
        def download() -> ActionResult:
            self.workspace.count("downloads")
            return ActionResult((OutputRef(fetcher.fetch(pin, progress), "application/octet-stream", "sdist",
                                           pin.file.filename),))

        for _ in range(SDIST_ATTEMPTS):
            result, _ = self.workspace.actions.get_or_compute(key, download)
            digest = result.outputs[0].digest
            with store.pin([digest]):
                path = store.path(digest)  # None: evicted before the pin (the next round fetches it again)
                if path is not None:
                    verify_blobs(store, [digest])
                    yield path
                    return
        raise BuilderError("RESOURCE_EXHAUSTED", f"the store evicts {pin.file.filename} as soon as it is stored; "
                           "it is too small for this build", reason="STORE_FULL")

    def _static_build_requires(self, sdist_path: Path, options: builder_pb2.BuildOptions) -> list[str]:
        """``[build-system].requires`` of the sdist, read from its ``pyproject.toml`` without running anything."""
        from .sdist_build import extract_sdist, read_build_system

        with tempfile.TemporaryDirectory(dir=self.workspace.tmp) as work:
            max_bytes = self.workspace.limits(options).max_output_bytes
            source = extract_sdist(sdist_path, Path(work) / "src", max_bytes=max_bytes)
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

    def _build_env(self, sdist_path: Path, target: TargetEnvironment, options: builder_pb2.BuildOptions,
                   constraints: Sequence[str], fetcher: Fetcher, depth: int) -> tuple[ResolvingBuildEnv, list[str]]:
        """A build-env provider for ``sdist_path``, and its static build requirements resolved now (as pins)."""
        from .build_env import ResolvingBuildEnv

        requires = self._static_build_requires(sdist_path, options)
        env = ResolvingBuildEnv(
            resolve=lambda reqs, cons: self._resolve_build(reqs, cons, target, options.index),
            wheel_path=lambda dep: self._dep_wheel_path(dep, target, options, constraints, fetcher, depth),
            constraints=constraints,
        )
        return env, [f"{p.name}=={p.version}" for p in env.preresolve(requires)]

    def _built_wheel(self, pin: Pin, target: TargetEnvironment, options: builder_pb2.BuildOptions,
                     constraints: Sequence[str], fetcher: Fetcher, progress: Progress | None,
                     building: Callable[[], None] | None, depth: int, watch: BuildWatch | None
                     ) -> tuple[OutputRef, Outcome]:
        if depth > MAX_BUILD_DEPTH:
            raise BuilderError("FAILED_PRECONDITION", f"build requirements nest deeper than {MAX_BUILD_DEPTH} at {pin}")
        with self._sdist(pin, fetcher, progress) as sdist_path:
            return self._build_sdist(pin, sdist_path, target, options, constraints, fetcher, building, depth,
                                     watch or BuildWatch())

    def _store_log(self, log: Path, pin: Pin) -> Digest | None:
        """The build log at ``log`` put in the store (None when there is none, or the store cannot take it: the
        log is worth less than the build's own answer)."""
        try:
            if not log.is_file() or not log.stat().st_size:
                return None
            return self.workspace.store.put_file(log)
        except (OSError, ServiceError) as exc:
            import logging

            logging.getLogger(__name__).warning("the build log of %s was not stored: %s", pin.file.filename, exc)
            return None

    def _build_sdist(self, pin: Pin, sdist_path: Path, target: TargetEnvironment, options: builder_pb2.BuildOptions,
                     constraints: Sequence[str], fetcher: Fetcher, building: Callable[[], None] | None, depth: int,
                     watch: BuildWatch) -> tuple[OutputRef, Outcome]:
        from .sdist_build import build_wheel

        ws = self.workspace
        interpreter = ws.interpreter_for(target)
        with building_sdist(pin, "resolving the build requirements of"):
            env, build_pins = self._build_env(sdist_path, target, options, constraints, fetcher, depth)
        config_settings = dict(options.config_settings)
        key = BuiltWheel(file_sha256(pin.file), target.digest(), tuple(build_pins), config_items(config_settings))

        @observe.timed_build("sdist")
        def build() -> ActionResult:
            ws.count("sdist_builds")
            if building is not None:
                building()
            with tempfile.TemporaryDirectory(dir=ws.tmp) as out:
                log_path = Path(out) / "build.log"
                try:
                    outcome = build_wheel(
                        sdist_path, interpreter=interpreter, env_provider=env, out_dir=Path(out),
                        limits=ws.limits(options), config_settings=config_settings, work_dir=ws.tmp,
                        sandbox=ws.sandbox, log=log_path, log_lines=watch.lines,
                    )
                except (ServiceError, CallError) as exc:
                    # The whole log of the failed build, for the caller to read (its error shows the last lines);
                    # a nested sdist's failure keeps the log of the build that failed.
                    if not getattr(exc, "build_log", "") and (failed_log := self._store_log(log_path, pin)):
                        exc.build_log = str(failed_log)  # type: ignore[union-attr]
                    raise
                tags = parse_wheel_filename(outcome.wheel.name)[3]
                if target.best_tag_rank(tags) is None:
                    raise BuilderError("FAILED_PRECONDITION",
                                       f"{pin.file.filename} built {outcome.wheel.name}, which does not fit the target",
                                       reason="WHEEL_INCOMPATIBLE")
                wheel = ws.store.put_file(outcome.wheel)
                with ws.store.pin([wheel]):  # storing the log must not evict the wheel
                    log = ws.store.put_file(outcome.log)
            return ActionResult(
                (OutputRef(wheel, WHEEL_MEDIA, "wheel", outcome.wheel.name),),
                meta={"log": str(log), "build_requirements": " ".join(outcome.build_requirements)},
            )

        with building_sdist(pin, "building"):
            # A caller joining an identical build in flight is building too (shared: it goes on if one leaves).
            result, outcome = ws.actions.get_or_compute_outcome(key.key(), build, building)
            asked = pinned_otherwise(result.meta.get("build_requirements", ""), build_pins, constraints)
            if asked:  # that build installed other versions of what the backend asked for than this set pins
                result, outcome = ws.actions.get_or_compute_outcome(replace(key, asked_pins=asked).key(), build,
                                                                    building)
        if result.meta.get("log"):
            watch.log = OutputRef(Digest.parse(result.meta["log"]), TEXT_MEDIA, "log",
                                  f"{pin.file.filename}.build.log")
        return result.outputs[0], outcome

    def prepare_metadata(self, pin: Pin, target: TargetEnvironment, options: builder_pb2.BuildOptions
                         ) -> tuple[OutputRef, bytes]:
        """Core metadata of an sdist with dynamic dependencies, by its backend in isolation; cached."""
        from .sdist_build import prepare_metadata

        if pin.file.is_wheel:
            raise BuilderError("INVALID_ARGUMENT", f"{pin.file.filename} is a wheel: its metadata is static")
        ws = self.workspace
        fetcher = self.fetcher(options.index)
        config_settings = dict(options.config_settings)
        key = PreparedMetadata(file_sha256(pin.file), target.digest(), config_items(config_settings))

        def prepare() -> ActionResult:
            with self._sdist(pin, fetcher, None) as sdist_path:
                env, _ = self._build_env(sdist_path, target, options, [], fetcher, 0)
                data = prepare_metadata(sdist_path, interpreter=ws.interpreter_for(target), env_provider=env,
                                        limits=ws.limits(options), config_settings=config_settings,
                                        work_dir=ws.tmp, sandbox=ws.sandbox)
            digest = ws.store.put_bytes(data)
            return ActionResult((OutputRef(digest, "text/plain", "metadata", f"{pin.file.filename}.metadata"),))

        with building_sdist(pin, "preparing the metadata of"):
            ref = ws.actions.get_or_compute(key.key(), prepare)[0].outputs[0]
        with ws.store.open(ref.digest) as fh:
            return ref, fh.read()

    def prepare(self, file: DistFile, target: TargetEnvironment, index: common_pb2.IndexConfig) -> bytes:
        """:class:`~venvsmith.core.resolution.MetadataPreparer`: :meth:`prepare_metadata` of one sdist."""
        pin = Pin(name=file.name, version=file.version, file=file)
        return self.prepare_metadata(pin, target, builder_pb2.BuildOptions(index=index))[1]

    def _resolve_build(self, requirements: Sequence[str], constraints: Sequence[str], target: TargetEnvironment,
                       index: common_pb2.IndexConfig) -> list[Pin]:
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

    def _dep_wheel_path(self, pin: Pin, target: TargetEnvironment, options: builder_pb2.BuildOptions,
                        constraints: Sequence[str], fetcher: Fetcher, depth: int) -> Path:
        ref, _ = self.wheel_for(pin, target=target, options=options, constraints=constraints, fetcher=fetcher,
                                depth=depth + 1)
        return self.workspace.named_wheel(ref)
