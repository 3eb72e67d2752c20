"""The resolver as a service: wire request in, wire answer out, with caching and single-flight.

Both transports use it: the gRPC servicer, and the CLI's embedded (in-process) mode.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from venvsmith.core import cancellation, engine_counts
from venvsmith.core.config import PipIndexConfig, effective_pip_config, venvsmith_home
from venvsmith.core.convert import pin_to_proto, target_from_spec, target_to_proto
from venvsmith.core.errors import InvalidInput, UrlNotAllowed, at_field, parsed_each
from venvsmith.core.fleet.cache_url import parse_cache_url
from venvsmith.core.fleet.flight import DEFAULT_LEASE_SECONDS, FleetFlight
from venvsmith.core.fleet.shared_cache import RedisTier
from venvsmith.core.health import HealthState
from venvsmith.core.index.allowlist import AllowList
from venvsmith.core.index.settings import IndexSettings, settings_from_config
from venvsmith.core.input_limits import MAX_REQUIREMENTS, check_count
from venvsmith.core.pin import lock_key, requirements_txt
from venvsmith.core.resolution import MetadataPreparer
from venvsmith.core.singleflight import SingleFlight
from venvsmith.core.target import TargetEnvironment
from venvsmith.v1 import common_pb2, resolver_pb2

from .answer_notes import answer_notes, quarantine_violations
from .convert import policy_from_proto
from .errors import NoSolution
from .resolution_cache import ResolutionCache
from .resolve import DEFAULT_MAX_BACKTRACKS, ResolutionRequest, parse_constraint, parse_requirement, resolve

if TYPE_CHECKING:
    from venvsmith.core.index.cache import IndexCache
    from venvsmith.core.index.http import HttpClient
    from venvsmith.core.signing import Signer, SigningKeyFile

DEFAULT_TTL_SECONDS = 600.0
#: Parsed requests remembered by their bytes (the fast path of a repeated request).
PREPARED_MEMO_ENTRIES = 4096
#: Why an engine constructed without a metadata preparer cannot read dynamic metadata (its composer may say more).
NO_BUILDER = "this resolver has no builder to prepare it"
#: Why a request with ``options.no_build`` does not.
NO_BUILD_REQUESTED = "building sdists to read their metadata is turned off (--no-build)"
#: Threads walking the likely dependency closure ahead of the search (network-bound, so many).
LOOKAHEAD_WORKERS = 32


@dataclass
class EngineSettings:
    """Server-side configuration: state directory, pip's index configuration, cache lifetime."""

    home: Path = field(default_factory=venvsmith_home)
    pip: PipIndexConfig = field(default_factory=effective_pip_config)
    resolution_ttl: float = field(
        default_factory=lambda: float(os.environ.get("VENVSMITH_RESOLUTION_TTL", DEFAULT_TTL_SECONDS))
    )
    #: Where a request may make this engine fetch from (its indexes, find-links, direct URLs, and where their
    #: redirects lead); a server's is its operator's (``serve --allow-index``), the embedded CLI's everything.
    allow: AllowList = field(default_factory=AllowList.everything)
    #: Signs every answer's lock document (``serve resolver --signing-key``); None: answers are unsigned.
    signer: Signer | SigningKeyFile | None = None
    #: ``--cache URL`` (:mod:`venvsmith.core.fleet.cache_url`): empty or ``sqlite:///DIR`` local, ``redis://...``
    #: shared by the replicas given the same URL (caches and the single-flight of resolutions).
    cache: str = field(default_factory=lambda: os.environ.get("VENVSMITH_CACHE", ""))
    #: ``--cache-ca FILE``: the CA bundle verifying a ``rediss://`` cache's certificate (empty: the system's).
    cache_ca: str = field(default_factory=lambda: os.environ.get("VENVSMITH_CACHE_CA", ""))
    #: Lifetime of a cross-replica single-flight lease (renewed while its holder works; a crashed holder's lapses).
    lease_seconds: float = field(
        default_factory=lambda: float(os.environ.get("VENVSMITH_LEASE_SECONDS", DEFAULT_LEASE_SECONDS))
    )
    #: HTTP connections kept per index host; None: the client's default, sized for a server's concurrent
    #: resolutions (a single resolution, the embedded CLI's, spends less CPU on TLS handshakes with fewer).
    max_connections: int | None = None


def _field_of(value: str, request: resolver_pb2.ResolveRequest, requirements, constraints) -> str:
    """The request field (``constraints[1]``) whose requirement or URL is ``value``; empty when none is."""
    for name, texts, parsed in (("requirements", request.requirements, requirements),
                                ("constraints", request.constraints, constraints)):
        for i, (text, req) in enumerate(zip(texts, parsed, strict=True)):
            if value in (text.strip(), str(req), getattr(req, "url", None)):
                return f"{name}[{i}]"
    return ""


def named_locations(index: common_pb2.IndexConfig) -> list[str]:
    """The index and find-links locations a request's ``IndexConfig`` names itself."""
    return [url.strip() for url in (index.index_url, *index.extra_index_urls, *index.find_links) if url.strip()]


def check_named_locations(allow: AllowList, index: common_pb2.IndexConfig, at: str = "index") -> None:
    """Each location ``index`` names itself is allowed, else :class:`UrlNotAllowed` saying which request field
    named it and that the server's allow-list (``serve --allow-index``) is what refuses it."""
    fields = [("index_url", index.index_url)]
    fields += [(f"extra_index_urls[{i}]", u) for i, u in enumerate(index.extra_index_urls)]
    fields += [(f"find_links[{i}]", u) for i, u in enumerate(index.find_links)]
    for name, url in fields:
        if not url.strip():
            continue
        try:
            allow.check(url.strip())
        except UrlNotAllowed as exc:
            raise UrlNotAllowed(exc.url, f"the request's {at}.{name} (the caller's index configuration) is not "
                                         "under a location this server allows (its --allow-index list); ask "
                                         "its operator to allow it, or run without --server") from None


def _secret_digest(index: common_pb2.IndexConfig) -> str:
    """A digest of the credentials, so answers are never shared across different credentials."""
    doc = sorted((c.url_prefix, c.username, c.password, c.token) for c in index.credentials)
    urls = [index.index_url, *index.extra_index_urls]
    return hashlib.sha256(json.dumps([doc, urls]).encode()).hexdigest()


class ResolverEngine:
    """Answers Resolve / ResolveStream / DescribeEnvironment; thread-safe.

    ``metadata_preparer`` reads the metadata of sdists with dynamic dependencies (a builder, embedded or remote);
    without one such sdists are FAILED_PRECONDITION, the message ending with ``without_preparer``.
    """

    def __init__(self, settings: EngineSettings | None = None, metadata_preparer: MetadataPreparer | None = None,
                 *, without_preparer: str = NO_BUILDER) -> None:
        self.settings = settings or EngineSettings()
        self.metadata_preparer = metadata_preparer
        self.without_preparer = without_preparer
        self.home = self.settings.home
        self.local = TargetEnvironment.from_local()
        #: Whether this engine can serve (a cache file corrupt and impossible to replace makes it NOT_SERVING).
        self.health = HealthState()
        location = parse_cache_url(self.settings.cache)
        #: Where the local SQLite caches are (``--cache sqlite:///DIR``, else the home directory).
        self.cache_dir = location.directory or self.home
        #: The Redis tier shared with the other replicas (``--cache redis://...``), and the single-flight over it.
        self.shared: RedisTier | None = None
        self.fleet: FleetFlight | None = None
        if location.redis_url is not None:
            self.shared = RedisTier(location.redis_url, health=self.health, description=location.describe(),
                                    ca_file=self.settings.cache_ca or None)
            self.fleet = FleetFlight(self.shared, self.settings.lease_seconds)
        self.cache = ResolutionCache(self.cache_dir / "resolutions.sqlite3", health=self.health, shared=self.shared)
        self.flights: SingleFlight[bytes] = SingleFlight()
        self.resolutions_run = 0
        self._count_lock = threading.Lock()
        self._prepared_memo: dict[bytes, tuple] = {}
        # One pooled HTTP client and one page/metadata cache for every resolution of this process, made on
        # first use (a process answered from the resolution cache never imports the fetching machinery).
        self._http: HttpClient | None = None
        self._index_cache: IndexCache | None = None
        self._edge_lock = threading.Lock()

    @property
    def http(self):
        """The pooled HTTP client (:class:`~venvsmith.core.index.http.HttpClient`)."""
        if self._http is None:
            with self._edge_lock:
                if self._http is None:
                    from venvsmith.core.index.http import MAX_CONNECTIONS, HttpClient

                    self._http = HttpClient(ca_bundle=self.settings.pip.cert, client_cert=self.settings.pip.client_cert,
                                            allow=self.settings.allow,
                                            max_connections=self.settings.max_connections or MAX_CONNECTIONS)
        return self._http

    @property
    def index_cache(self):
        """The page and metadata cache (:class:`~venvsmith.core.index.cache.IndexCache`)."""
        if self._index_cache is None:
            with self._edge_lock:
                if self._index_cache is None:
                    from venvsmith.core.index.cache import IndexCache

                    self._index_cache = IndexCache(self.cache_dir / "index", health=self.health, shared=self.shared)
        return self._index_cache

    def close(self) -> None:
        self.cache.close()
        if self.shared is not None:
            self.shared.close()
        if self._index_cache is not None:
            self._index_cache.close()
        if self._http is not None:
            self._http.close()

    # -- requests ----------------------------------------------------------------------------------

    def describe(self, request: resolver_pb2.DescribeEnvironmentRequest) -> common_pb2.TargetEnvironment:
        """The target environment, and in ``metadata_builder`` how this engine reads dynamic metadata."""
        with at_field("target"):
            answer = target_to_proto(target_from_spec(request.target, self.local))
        preparer = self.metadata_preparer
        if preparer is None:
            answer.metadata_builder = f"none: {self.without_preparer}"
        else:
            answer.metadata_builder = getattr(preparer, "description", "") or type(preparer).__name__
        return answer

    def index_settings(self, index: common_pb2.IndexConfig) -> IndexSettings:
        """The effective index configuration: the request's, completed from pip's on the server; an index or
        find-links location the request names outside the allow-list is
        :class:`~venvsmith.core.errors.UrlNotAllowed` (the server's own configuration is its operator's)."""
        settings = settings_from_config(index, self.settings.pip, self.home / "index")
        check_named_locations(self.settings.allow, index)
        return settings

    def _prepared(self, request: resolver_pb2.ResolveRequest):
        """:meth:`_prepare`, memoised by the request's bytes: a repeated request skips parsing and expansion."""
        probe = resolver_pb2.ResolveRequest()
        probe.CopyFrom(request)
        probe.no_cache = False
        raw = probe.SerializeToString(deterministic=True)
        with self._count_lock:
            held = self._prepared_memo.get(raw)
        if held is None:
            held = self._prepare(request)
            with self._count_lock:
                if len(self._prepared_memo) >= PREPARED_MEMO_ENTRIES:
                    self._prepared_memo.pop(next(iter(self._prepared_memo)))
                self._prepared_memo[raw] = held
        return held

    def _prepare(self, request: resolver_pb2.ResolveRequest):
        if not request.requirements:
            raise InvalidInput("", "at least one requirement is needed", field="requirements")
        check_count(len(request.requirements), MAX_REQUIREMENTS, "requirements")
        check_count(len(request.constraints), MAX_REQUIREMENTS, "constraints")
        requirements = tuple(parsed_each(parse_requirement, "requirements", request.requirements))
        constraints = tuple(parsed_each(parse_constraint, "constraints", request.constraints))
        self.settings.allow.check_all(r.url for r in (*requirements, *constraints) if r.url)
        with at_field("target"):
            target = target_from_spec(request.target, self.local)
        with at_field("options"):
            policy = policy_from_proto(request.options)
        with at_field("index"):
            settings = self.index_settings(request.index)
        key_doc = {
            # Bumped when the stored answer changes shape (2: pins carry the release's sdist; lock files for
            # every patch release), so answers cached by an older version are not served.
            "answer_format": 2,
            "requirements": [str(r) for r in requirements],
            "constraints": sorted(str(c) for c in constraints),
            "target": target.digest(),
            "index": {
                "index_url": settings.index_url,
                "extra": list(settings.extra_index_urls),
                "find_links": list(settings.find_links),
                "strategy": settings.strategy,
                "package_index": sorted(settings.package_index.items()),
                "secrets": _secret_digest(request.index),
            },
            "options": request.options.SerializeToString(deterministic=True).hex(),
        }
        key = hashlib.sha256(json.dumps(key_doc, sort_keys=True).encode()).hexdigest()
        return key, requirements, constraints, target, policy, settings

    def resolve(
        self,
        request: resolver_pb2.ResolveRequest,
        *,
        deadline: float | None = None,
        on_event: Callable[[resolver_pb2.ResolveProgress], None] | None = None,
        is_active: Callable[[], bool] | None = None,
    ) -> resolver_pb2.ResolveResponse:
        """Resolve one request; raises :class:`~venvsmith.core.errors.ServiceError` subclasses.

        ``is_active`` tells whether the caller still waits (``grpc.ServicerContext.is_active``): a resolution
        stops (:class:`~venvsmith.core.cancellation.Cancelled`) once no caller sharing it does.
        """
        started = time.perf_counter()
        key, requirements, constraints, target, policy, settings = self._prepared(request)
        if not request.no_cache:
            hit = self.cache.get(key)
            engine_counts.cache_lookup("resolution", hit is not None)
            if hit is not None:
                response = resolver_pb2.ResolveResponse.FromString(hit[0])
                response.stats.resolution_cache_hit = True
                response.stats.elapsed_ms = (time.perf_counter() - started) * 1000
                self._sign(response)
                return response

        from_fleet: list[bool] = []

        def compute(should_stop: Callable[[], bool], lease) -> bytes:
            with cancellation.stopping_when(should_stop):
                response = self._resolve_now(
                    requirements, constraints, target, policy, settings, request, deadline, on_event
                )
            body = response.SerializeToString()
            expires = None if policy.exclude_newer else time.time() + self.settings.resolution_ttl
            self.cache.put(key, body, expires, lease=lease)
            return body

        def work(should_stop: Callable[[], bool]) -> bytes:
            if self.fleet is None or request.no_cache:
                return compute(should_stop, None)

            def lookup() -> bytes | None:
                hit = self.cache.get(key)
                return hit[0] if hit is not None else None

            body, joined = self.fleet.do(f"resolve:{key}", lambda lease: compute(should_stop, lease), lookup,
                                         lambda: not should_stop())
            from_fleet.append(joined)
            return body

        body, shared = self.flights.do_shared(key, work, is_active)
        shared = shared or any(from_fleet)
        response = resolver_pb2.ResolveResponse.FromString(body)
        response.stats.shared_in_flight = shared
        response.stats.elapsed_ms = (time.perf_counter() - started) * 1000
        self._sign(response)
        return response

    def _sign(self, response: resolver_pb2.ResolveResponse) -> None:
        """Sign the lock document of ``response`` when this engine has a signing key (imported only then)."""
        if self.settings.signer is not None:
            from venvsmith.core.signed_lock import sign_response

            sign_response(response, self.settings.signer)

    def _resolve_now(
        self, requirements, constraints, target, policy, settings, request, deadline, on_event
    ) -> resolver_pb2.ResolveResponse:
        with self._count_lock:
            self.resolutions_run += 1

        def forward(kind: str, name: str, version: str, detail: str) -> None:
            if on_event is not None:
                on_event(
                    resolver_pb2.ResolveProgress(
                        kind=kind.upper(),  # the enum's label: PINNED, BACKTRACKED, ...
                        name=name, version=version, detail=detail,
                    )
                )

        def page_event(kind: str, name: str, detail: str) -> None:
            if kind == "metadata":
                version, _, detail = detail.partition(" ")
                forward("metadata_fetched", name, version, detail)
            else:
                forward("page_fetched", name, "", detail)

        from venvsmith.core.index.finder import IndexSource

        from .attested import attestation_names, with_identities
        from .prepared import PreparingSource
        from .render import pylock_toml

        with at_field("options.require_attestations"):
            attested = attestation_names(request.options.require_attestations)

        with IndexSource(
            settings, http=self.http, cache=self.index_cache, on_event=page_event if on_event else None,
            deadline=deadline,
        ) as index_source:
            no_build = request.options.no_build
            preparer = None if no_build else self.metadata_preparer
            why_not = NO_BUILD_REQUESTED if no_build else self.without_preparer
            prepare = None if preparer is None else (lambda file: preparer.prepare(file, target, request.index))
            source = PreparingSource(index_source, prepare, why_not)
            try:
                resolution = resolve(
                    ResolutionRequest(
                        requirements=requirements,
                        target=target,
                        constraints=constraints,
                        policy=policy,
                        max_backtracks=request.options.max_backtracks or DEFAULT_MAX_BACKTRACKS,
                        deadline=deadline,
                        lookahead_workers=LOOKAHEAD_WORKERS,
                    ),
                    source,
                    on_event=forward if on_event else None,
                )
            except NoSolution as exc:
                message = f"{exc.message}\n{settings.describe()}"
                quarantined = quarantine_violations(index_source.project_statuses())
                if quarantined:  # "no versions" alone would hide why (PEP 792)
                    message += "".join(f"\n{v.description}; its files are not used" for v in quarantined)
                message += "".join(f"\n{line}" for line in _hints(exc, index_source))
                raise NoSolution(message, exc.chains, (*exc.notes, *quarantined)) from None
            except InvalidInput as exc:  # found while resolving (a URL constraint, a marker): name its field
                if not exc.field:
                    exc.field = _field_of(exc.value, request, requirements, constraints)
                raise
            stats = index_source.stats
            engine_counts.cache_lookup("index_page", True, stats.pages_cached)
            engine_counts.cache_lookup("index_page", False, stats.pages_fetched)
            engine_counts.cache_lookup("metadata", True, stats.metadata_cached)
            engine_counts.cache_lookup("metadata", False, stats.metadata_fetched)
            # PEP 740 publisher identities of the pinned files only; verified offline for the projects named.
            resolution = replace(resolution, pins=with_identities(resolution.pins, attested, index_source))
            notes = answer_notes(resolution.pins, policy, index_source.project_statuses())
        key = lock_key(resolution.pins, target)
        expires_at = ""
        if not policy.exclude_newer:
            expires_at = datetime.fromtimestamp(time.time() + self.settings.resolution_ttl, UTC).isoformat()
        return resolver_pb2.ResolveResponse(
            pins=[pin_to_proto(p) for p in resolution.pins],
            lock_key=key,
            requirements_txt=requirements_txt(resolution.pins, target, key),
            pylock_toml=pylock_toml(resolution.pins, target),
            environment=target_to_proto(target),
            stats=resolver_pb2.ResolveStats(
                pages_fetched=stats.pages_fetched,
                pages_cached=stats.pages_cached,
                metadata_fetched=stats.metadata_fetched,
                metadata_cached=stats.metadata_cached,
                backtracks=resolution.backtracks,
            ),
            expires_at=expires_at,
            notes=notes,
        )

    def resolve_stream(
        self, request: resolver_pb2.ResolveRequest, *, deadline: float | None = None,
        is_active: Callable[[], bool] | None = None,
    ) -> Iterator[resolver_pb2.ResolveEvent]:
        """Progress events while resolving, then pins in install order, then the summary."""
        events: queue.SimpleQueue = queue.SimpleQueue()
        done = object()
        outcome: dict = {}

        def run() -> None:
            try:
                outcome["response"] = self.resolve(
                    request, deadline=deadline, on_event=lambda p: events.put(p), is_active=is_active
                )
            except BaseException as exc:  # re-raised in the caller's thread
                outcome["error"] = exc
            finally:
                events.put(done)

        threading.Thread(target=contextvars.copy_context().run, args=(run,), name="resolve-stream", daemon=True).start()
        while (item := events.get()) is not done:
            yield resolver_pb2.ResolveEvent(progress=item)
        if "error" in outcome:
            raise outcome["error"]
        response: resolver_pb2.ResolveResponse = outcome["response"]
        for pin in response.pins:
            yield resolver_pb2.ResolveEvent(pin=pin)
        yield resolver_pb2.ResolveEvent(
            summary=resolver_pb2.ResolveSummary(
                lock_key=response.lock_key,
                requirements_txt=response.requirements_txt,
                pylock_toml=response.pylock_toml,
                environment=response.environment,
                stats=response.stats,
                pin_count=len(response.pins),
                expires_at=response.expires_at,
                signature=response.signature if response.HasField("signature") else None,
                notes=response.notes,
            )
        )


def _hints(exc: NoSolution, index_source) -> list[str]:
    """The hints that apply to this failure: "did you mean" for a project no index lists, the first-index hint
    when a project of the conflict was found on an index while later indexes were not asked for it."""
    from .suggest import did_you_mean

    projects = sorted({c.project for c in exc.chains})
    missing = [p for p in projects if not index_source.files(p)]  # listed already: no new request
    hints = did_you_mean(missing, index_source.known_names()) if missing else []
    if set(projects) & index_source.first_index_only():
        hints.append("hint: with the first-index strategy only the first index that lists a name is asked for it; "
                     "--index-strategy unsafe-best-match unions them (at the risk of dependency confusion)")
    return hints

