"""One Build stream: header, pins as they arrive, end; progress events out, then a result.

Wheels are fetched as their pins arrive. An sdist is fetched at once too, but its build waits until every one of
its static build requirements is among the pins received, or the stream has ended; then it is built constrained by
the pins received (so the whole pinned set where it matters): the same pinned set gives the same wheels and build
keys in any stream order.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from venvsmith.core import cancellation
from venvsmith.core.convert import pin_from_proto, target_from_spec
from venvsmith.core.errors import ServiceError, at_field
from venvsmith.core.input_limits import MAX_BUILD_PINS, check_count
from venvsmith.core.pin import Pin, lock_key
from venvsmith.core.signed_build import sign_result
from venvsmith.core.target import TargetEnvironment
from venvsmith.v1 import builder_pb2, resolver_pb2

from .action_cache import OutputRef
from .digest import Digest
from .engine import BuildEngine, ref_to_proto
from .env_lock import LockInputs, resolution_document
from .errors import BuilderError
from .venv_key import interpreter_to_proto
from .wheels import BuildWatch
from .workspace import TEXT_MEDIA

if TYPE_CHECKING:
    from .fetch import Fetcher

State = builder_pb2.PinProgress.State
_DONE = object()


@dataclass(frozen=True)
class _Header:
    """What a Build stream's header sets for the whole run."""

    target: TargetEnvironment
    options: builder_pb2.BuildOptions
    fetcher: Fetcher


def _failed_log(exc: BaseException, pin: Pin) -> OutputRef | None:
    """The stored log of the failed build ``exc`` reports (see :class:`~builder_service.wheels.BuildWatch`)."""
    text = getattr(exc, "build_log", "")
    if not text:
        return None
    try:
        return OutputRef(Digest.parse(text), TEXT_MEDIA, "log", f"{pin.file.filename}.build.log")
    except ServiceError:
        return None


class BuildRun:
    """Consumes a request stream in a reader thread; :meth:`events` yields progress and finally the result."""

    def __init__(self, engine: BuildEngine, requests: Iterable[builder_pb2.BuildRequest],
                 is_active: Callable[[], bool] | None = None,
                 resolution: Callable[[], resolver_pb2.ResolveResponse | None] | None = None) -> None:
        self.engine = engine
        self.requests = requests
        #: Whether the caller still waits (``grpc.ServicerContext.is_active``): once not, the run's fetches and
        #: builds stop (their processes killed) unless another call shares them. None: always.
        self.is_active = is_active
        #: ResolveAndBuild: the resolver's answer (pins, lock documents, signature) once its summary has come, for
        #: the environment image's lock document.
        self.resolution = resolution
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.started = time.perf_counter()
        #: Set by the stream's first message; every pin comes after it.
        self.header: _Header | None = None
        self.pins: list[Pin] = []
        self.futures: list[Future] = []
        self.outcomes: Counter[str] = Counter()
        self.stats_lock = threading.Lock()
        #: Sdists whose build waits for their build requirements to be pinned: (pin, requirement names, future).
        self.waiting: list[tuple[Pin, frozenset[str], Future]] = []
        #: True once the stream's end arrived: every waiting build may start.
        self.ended = False
        self.waiting_lock = threading.Lock()

    # -- output ---------------------------------------------------------------------------------------

    def _progress(self, pin: Pin, state: builder_pb2.PinProgress.State, **fields: Any) -> None:
        self.queue.put(builder_pb2.BuildEvent(progress=builder_pb2.PinProgress(
            name=pin.name, version=str(pin.version), state=state, **fields)))

    def events(self) -> Iterator[builder_pb2.BuildEvent]:
        threading.Thread(target=self._read, name="build-reader", daemon=True).start()
        while (item := self.queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item

    def _header(self) -> _Header:
        """The stream's header (:meth:`_read` takes a pin or the end only after it)."""
        if self.header is None:
            raise BuilderError("INVALID_ARGUMENT", "the Build stream must start with a header")
        return self.header

    # -- input ----------------------------------------------------------------------------------------

    def _read(self) -> None:
        try:
            end = None
            for request in self.requests:
                kind = request.WhichOneof("item")
                if kind == "header":
                    if self.header is not None:
                        raise BuilderError("INVALID_ARGUMENT", "a second header in one Build stream")
                    options = request.header.options
                    self.header = _Header(target_from_spec(request.header.target, self.engine.local), options,
                                          self.engine.wheels.fetcher(options.index))
                elif self.header is None:
                    raise BuilderError("INVALID_ARGUMENT", f"the Build stream must start with a header, not a {kind}")
                elif kind == "pin":
                    if end is not None:
                        raise BuilderError("INVALID_ARGUMENT", "a pin after the end of the Build stream")
                    check_count(len(self.pins) + 1, MAX_BUILD_PINS, "pins")
                    with at_field(f"pins[{len(self.pins)}]"):  # the n-th pin of the stream
                        pin = pin_from_proto(request.pin)
                    self._start(pin)
                elif kind == "end":
                    end = request.end
                    with self.waiting_lock:
                        self.ended = True
                    self._release()
                else:
                    raise BuilderError("INVALID_ARGUMENT", "an empty BuildRequest")
            if end is None:
                raise BuilderError("INVALID_ARGUMENT", "the Build stream ended without an end message")
            self.queue.put(self._finish(end))
        except BaseException as exc:  # noqa: BLE001 - delivered to the caller's thread
            for future in self.futures:
                future.cancel()
            self.queue.put(exc)
        self.queue.put(_DONE)

    def _start(self, pin: Pin) -> None:
        """Queue the pin: a wheel is fetched at once; an sdist is fetched and waits to build (:meth:`_release`)."""
        self._progress(pin, State.QUEUED)
        with self.waiting_lock:
            self.pins.append(pin)
        if pin.file.is_wheel:
            self.futures.append(self.engine.pool.submit(self._work, pin, []))
        else:
            wheel: Future = Future()
            self.futures.append(wheel)
            self.engine.pool.submit(self._wait_to_build, pin, wheel)
        self._release()

    def _wait_to_build(self, pin: Pin, wheel: Future) -> None:
        """Read the sdist's static build requirements, then wait in :attr:`waiting` until they are all pinned."""
        if wheel.cancelled():
            return

        def progress(done: int, total: int) -> None:
            self._progress(pin, State.DOWNLOADING, bytes_done=done, bytes_total=total)

        try:
            header = self._header()
            with cancellation.serving(self.is_active):
                needs = self.engine.wheels.build_requirement_names(pin, header.target, header.options, header.fetcher,
                                                                   progress)
        except BaseException as exc:  # noqa: BLE001 - delivered through the pin's future
            self._progress(pin, State.FAILED, detail=str(exc)[-2000:])
            if wheel.set_running_or_notify_cancel():  # not when the run was cancelled meanwhile
                wheel.set_exception(exc)
            return
        with self.waiting_lock:
            self.waiting.append((pin, needs, wheel))
        self._release()

    def _release(self) -> None:
        """Start the sdist builds that may start: the stream has ended, or each of their build requirements is
        pinned. Every build is constrained by all the pins received (uv's match-runtime): a package compiled
        against numpy is built against the pinned numpy, whichever of the two the stream sent first."""
        with self.waiting_lock:
            seen = {p.name for p in self.pins}
            ready = [w for w in self.waiting if self.ended or w[1] <= seen]
            if not ready:
                return
            self.waiting = [w for w in self.waiting if w not in ready]
            constraints = [f"{p.name}=={p.version}" for p in self.pins]
        for pin, _, wheel in ready:
            self.engine.pool.submit(self._build_into, pin, constraints, wheel)

    def _build_into(self, pin: Pin, constraints: list[str], wheel: Future) -> None:
        if not wheel.set_running_or_notify_cancel():
            return
        try:
            wheel.set_result(self._work(pin, constraints))
        except BaseException as exc:  # noqa: BLE001 - delivered through the pin's future
            wheel.set_exception(exc)

    def _work(self, pin: Pin, constraints: list[str]) -> OutputRef:
        def progress(done: int, total: int) -> None:
            self._progress(pin, State.DOWNLOADING, bytes_done=done, bytes_total=total)

        def building() -> None:  # only when a build really starts (not for a wheel built before)
            self._progress(pin, State.BUILDING, detail=f"building {pin.file.filename}")

        def lines(batch: list[str]) -> None:  # this pin's own build's lines (each build has its own log)
            self._progress(pin, State.BUILDING, log_lines=batch)

        header = self._header()
        watch = BuildWatch(lines if header.options.stream_build_log else None)
        try:
            with cancellation.serving(self.is_active):  # shared builds stop only when all their callers left
                ref, outcome = self.engine.wheels.wheel_for(
                    pin, target=header.target, options=header.options, constraints=constraints,
                    fetcher=header.fetcher, progress=progress, building=building, watch=watch,
                )
        except BaseException as exc:
            failed_log = _failed_log(exc, pin)
            self._progress(pin, State.FAILED, detail=str(exc)[-2000:],
                           **({"build_log": ref_to_proto(failed_log, self._http())} if failed_log else {}))
            raise
        with self.stats_lock:
            if outcome == "computed":
                self.outcomes["downloaded" if pin.file.is_wheel else "built"] += 1
            else:  # in the store before, or put there by an identical build in flight
                self.outcomes["cached"] += 1
                self.outcomes["shared"] += outcome == "shared"
        done = State.DONE if outcome == "computed" else State.CACHED
        log = {"build_log": ref_to_proto(watch.log, self._http())} if watch.log else {}
        self._progress(pin, done, wheel=ref_to_proto(ref, self._http()), **log)
        return ref

    def _lock_inputs(self, lock_file: OutputRef, key: str) -> LockInputs:
        """The environment image's lock document: the lock file, and the resolver's documents and signature."""
        response = self.resolution() if self.resolution is not None else None
        if response is None or self.engine.environments.images() is None or response.lock_key != key:
            return LockInputs(lock_file)
        return LockInputs(lock_file, resolution_document(self.engine.store, response))

    def _http(self) -> str:
        return self.engine.settings.http_base_url

    # -- result ---------------------------------------------------------------------------------------

    def _finish(self, end: builder_pb2.BuildEnd) -> builder_pb2.BuildEvent:
        if end.pin_count and end.pin_count != len(self.pins):
            raise BuilderError("INVALID_ARGUMENT", f"the end says {end.pin_count} pins, {len(self.pins)} were sent")
        if not self.pins:
            raise BuilderError("INVALID_ARGUMENT", "a Build stream without pins")
        header = self._header()
        key = lock_key(self.pins, header.target)
        if end.lock_key and end.lock_key != key:
            raise BuilderError("INVALID_ARGUMENT",
                               f"lock key {end.lock_key} does not match the pins and target (expected {key})")
        wheels = [f.result() for f in self.futures]
        options = header.options
        environments = self.engine.environments
        http = self._http()
        environments.remember_wheels(key, wheels)
        result = builder_pb2.BuildResult(lock_key=key, http_base_url=http, target_digest=header.target.digest())
        if options.wheels:
            result.wheels.extend(ref_to_proto(w, http, key) for w in wheels)
        lock_file = environments.lock_file(self.pins, header.target, key)
        result.lock_file.CopyFrom(ref_to_proto(lock_file, http, key))
        if options.wheelhouse:
            result.wheelhouse.CopyFrom(ref_to_proto(environments.wheelhouse(key, wheels), http, key))
        venv_outcome = "cached"
        if options.venv_archive:
            with cancellation.serving(self.is_active):
                ref, venv_outcome, base = environments.venv_archive(key, header.target, wheels,
                                                                    options.compile_bytecode, seed=options.seed,
                                                                    lock=self._lock_inputs(lock_file, key))
            result.venv_archive.CopyFrom(ref_to_proto(ref, http, key))
            result.interpreter.CopyFrom(interpreter_to_proto(base))
        shared = bool(self.outcomes["shared"]) or venv_outcome == "shared"
        result.stats.CopyFrom(builder_pb2.BuildStats(
            elapsed_ms=(time.perf_counter() - self.started) * 1000,
            cached=self.outcomes["cached"] == len(self.pins) and venv_outcome == "cached" and not shared,
            wheels_cached=self.outcomes["cached"],
            wheels_built=self.outcomes["built"],
            wheels_downloaded=self.outcomes["downloaded"],
            shared_in_flight=shared,
            venv_built=venv_outcome == "computed",
        ))
        sign_result(result, self.engine.settings.signer)  # --signing-key: the answer's artifacts, signed
        return builder_pb2.BuildEvent(result=result)
