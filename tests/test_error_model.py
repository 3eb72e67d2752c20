"""The one error model: every domain error of both services maps to a status that the proto documents for each RPC
it can come from, names an ``ErrorReason`` of common.proto, and carries the rich details its status promises."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2

from builder_service.digest import Digest
from builder_service.errors import (
    BlobNotFound,
    BlobTooLarge,
    BuilderError,
    BuildError,
    BuildFailed,
    BuildOutOfMemory,
    BuildOutputTooLarge,
    BuildRequirementUnavailable,
    BuildTimeout,
    DigestMismatch,
    InvalidDigest,
    InvalidRange,
    InvalidSdist,
    NotRelocatable,
    RegistryError,
    RegistryUnavailable,
    SdistFailed,
    StoreError,
    StoreFull,
    UnsafeArchive,
    UnsafeWheel,
    VenvError,
    status_of,
)
from resolver_service.errors import ConflictChain, NoSolution, TooManyBacktracks
from venvsmith.core.errors import (
    MAX_DETAILS_BYTES,
    AttestationUnverified,
    BuilderUnavailable,
    Cancelled,
    DeadlineExceeded,
    DynamicMetadata,
    IndexUnavailable,
    InvalidDistribution,
    InvalidInput,
    RoleDenied,
    ServerBusy,
    ServiceError,
    Unauthenticated,
    UrlNotAllowed,
)
from venvsmith.core.grpc_util import abort
from venvsmith.core.resolution import CallError
from venvsmith.v1 import common_pb2

from .test_protos import FILE_SERVICE, SERVICE_METHOD, descriptor_set  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parent.parent
#: Modules that define the error classes (imported so that every subclass is known).
ERROR_MODULES = ["venvsmith.core.errors", "resolver_service.errors", "builder_service.errors"]
#: Every module of the services and the core (their exception classes are checked below).
SERVICE_PACKAGES = ["venvsmith/core", "resolver_service", "builder_service", "venvsmith/clients", "venvsmith/cli"]
#: Exceptions that are not domain errors, each with where it is turned into one (or why it never reaches a caller).
INTERNAL_EXCEPTIONS = {
    "builder_service.action_result.InvalidActionResult": "a stored action result that fails to parse is a miss",
    "builder_service.action_result.MissingOutputs": "an action result whose outputs are gone is a miss",
    "builder_service.materialize.TemplateChanged": "materialize() rebuilds the template from the archive (a warning)",
    "builder_service.orchestrate._Aborted": "ends the build side when the resolution failed (that error goes on)",
    "builder_service.sandbox.SandboxUnavailable": "start-up only: serve builder refuses to start (auto falls back)",
    "builder_service._sandbox_init.SetupError": "in the sandbox before exec: exit 125, the build's BuildFailed",
    "resolver_service.conflicts._GiveUp": "a proof given up: the search runs instead",
    "resolver_service.resolve._GoingInCircles": "the search repeats itself: the exhaustive check runs instead",
    "resolver_service.resolve._Unproven": "impossible after a skipping backjump: confirmed before it is answered",
    "venvsmith.core.resolution.CallError": "a failed call: abort() passes its status and details on as they came",
    "venvsmith.core.reqfile.RequirementsFileError": "CLI only: a requirements file it cannot read",
    "venvsmith.cli.serve_options.ConfigError": "CLI only: a bad serve option (config file, variable, flag): exit 2",
    "venvsmith.cli.serve_start.StartupError": "serve start-up only: a server that cannot start (exit 1)",
    "venvsmith.cli.build._NeedsServer": "venv only: a node-kept answer whose environment the node lost; the server "
                                        "is asked instead",
    "venvsmith.clients.node_entry.NodeCacheError": "CLI only: venv --node-cache cannot use DIR as asked (not "
                                                   "writable, a lock never released, links impossible): exit 2",
    "venvsmith.cli.exits.CommandFailed": "CLI only: a command stops with one line (a port in use, no requirements): "
                                         "exit 2 (venvsmith.cli.exits)",
    "venvsmith.core.index.pages.PageError": "IndexUnavailable in finder.py",
    "venvsmith.core.index.http.TransportError": "IndexUnavailable in http.py",
    "venvsmith.core.index.transport.TrustStoreError": "IndexUnavailable in http.py",
    "venvsmith.core.index.transport.ProxyConfigError": "IndexUnavailable in http.py",
    "venvsmith.core.index.ranges.RangesUnsupported": "metadata_fetch.py reads the whole file instead",
    "venvsmith.core.index.allowlist._Refused": "UrlNotAllowed in AllowList.check",
    "venvsmith.core.probe.ProbeError": "InvalidInput in target.py, VenvError in venv.py; interpreters.py skips it",
    "venvsmith.core.auth.SecurityConfigError": "CLI/serve start-up only: a token or TLS file it cannot use",
    "venvsmith.core.auth.TokenFileError": "serve start-up only (a bad file on reload keeps the old tokens)",
    "venvsmith.core.tls.TlsConfigError": "serve/client start-up only (a bad file on reload keeps the old ones)",
    "venvsmith.core.signing.KeyFileError": "CLI/serve start-up only: a --signing-key/--trusted-key file (exit 2)",
    "venvsmith.core.signing.UntrustedAnswer": "client side only: an answer it refuses (exit 1); a cache miss",
}
D = Digest("0" * 64, 3)

#: One example of every error class.
EXAMPLES: dict[type[ServiceError], Callable[[], ServiceError]] = {
    InvalidInput: lambda: InvalidInput("x ===", "invalid requirement", field="requirements[0]"),
    DynamicMetadata: lambda: DynamicMetadata("a-1.0.tar.gz", "dynamic dependencies"),
    BuilderUnavailable: lambda: BuilderUnavailable("127.0.0.1:1", "a-1.0.tar.gz", "connection refused"),
    IndexUnavailable: lambda: IndexUnavailable("http://127.0.0.1:1/simple/", "connection refused"),
    InvalidDistribution: lambda: InvalidDistribution("a-1.0-py3-none-any.whl", "name differs"),
    DeadlineExceeded: lambda: DeadlineExceeded("the deadline passed"),
    UrlNotAllowed: lambda: UrlNotAllowed("http://127.0.0.1:9/x.whl", "not allowed"),
    NoSolution: lambda: NoSolution(
        "no solution", [ConflictChain("u", ("a (required by you)", "u<1 (required by a==1)"))]),
    TooManyBacktracks: lambda: TooManyBacktracks("gave up"),
    DigestMismatch: lambda: DigestMismatch("a.whl", D, Digest("1" * 64, 3)),
    InvalidDigest: lambda: InvalidDigest("sha256:zz", "not hex"),
    UnsafeWheel: lambda: UnsafeWheel("a-1.0-py3-none-any.whl", "../x", "escapes"),
    UnsafeArchive: lambda: UnsafeArchive(Path("/tmp/a.tar.zst"), "../x", "escapes"),
    VenvError: lambda: VenvError(Path("/tmp/v"), "no python"),
    NotRelocatable: lambda: NotRelocatable(Path("/tmp/v/bin/tool"), "/tmp/v"),
    StoreError: lambda: BlobNotFound(D),
    BlobNotFound: lambda: BlobNotFound(D),
    BlobTooLarge: lambda: BlobTooLarge("a.whl", 10),
    StoreFull: lambda: StoreFull("a.whl", 10, 20),
    InvalidRange: lambda: InvalidRange(D, 5, 1),
    BuildError: lambda: BuildError("build_wheel", "failed"),
    BuildFailed: lambda: BuildFailed("build_wheel", 1, "Traceback ...\nSystemExit: 1\n"),
    BuildTimeout: lambda: BuildTimeout("build_wheel", 3, ""),
    BuildOutOfMemory: lambda: BuildOutOfMemory("build_wheel", 1 << 30, "MemoryError"),
    BuildOutputTooLarge: lambda: BuildOutputTooLarge("build_wheel", 1 << 20, ""),
    InvalidSdist: lambda: InvalidSdist(Path("/tmp/a-1.0.tar.gz"), "no pyproject.toml"),
    BuildRequirementUnavailable: lambda: BuildRequirementUnavailable("helper>=2", "no version"),
    BuilderError: lambda: BuilderError("INVALID_ARGUMENT", "an empty BuildRequest"),
    SdistFailed: lambda: SdistFailed("pkg-2.0.tar.gz", "building", BuildFailed("build_wheel", 3, "no\n")),
    Unauthenticated: lambda: Unauthenticated("/venvsmith.v1.BuilderService/Build", "needs a token"),
    RoleDenied: lambda: RoleDenied("/venvsmith.v1.BuilderService/Build", "resolve", "build"),
    ServerBusy: lambda: ServerBusy("/venvsmith.v1.BuilderService/Build", 4),
    Cancelled: lambda: Cancelled("every caller cancelled"),
    AttestationUnverified: lambda: AttestationUnverified("a", "a-1.0-py3-none-any.whl", "no provenance document"),
    RegistryUnavailable: lambda: RegistryUnavailable("127.0.0.1:5000/acme", "connection refused"),
    RegistryError: lambda: RegistryError("127.0.0.1:5000/acme", "PUT manifest: HTTP 403 denied"),
}

RESOLVER = {InvalidInput, NoSolution, DynamicMetadata, IndexUnavailable, InvalidDistribution, TooManyBacktracks,
            DeadlineExceeded, UrlNotAllowed, AttestationUnverified}
BUILDS = {BuildError, BuildFailed, BuildTimeout, BuildOutOfMemory, BuildOutputTooLarge, InvalidSdist,
          BuildRequirementUnavailable, DigestMismatch, InvalidDigest, BlobTooLarge, UnsafeWheel, BuilderError,
          SdistFailed, StoreFull}
#: A builder whose --store is an OCI registry (builder_service.store.oci).
REGISTRY = {RegistryUnavailable, RegistryError}
ASSEMBLY = {UnsafeArchive, VenvError, NotRelocatable}
#: A server with --auth-tokens refuses any RPC with these (venvsmith.core.auth).
AUTH = {Unauthenticated, RoleDenied}
#: A server refuses an expensive call beyond --max-concurrent-calls with this (venvsmith.core.admission).
BUSY = {ServerBusy}
#: Which error classes each RPC (by method name, whichever service has it) can end with.
RPC_ERRORS: dict[str, set[type[ServiceError]]] = {
    # a builder prepares dynamic metadata (a resolver server's --builder may be down: BuilderUnavailable)
    "Resolve": RESOLVER | BUILDS | AUTH | BUSY | {Cancelled, BuilderUnavailable},
    "ResolveStream": RESOLVER | BUILDS | AUTH | BUSY | {Cancelled, BuilderUnavailable},
    "DescribeEnvironment": {InvalidInput} | AUTH,
    "Build": RESOLVER | BUILDS | ASSEMBLY | REGISTRY | AUTH | BUSY,
    "ResolveAndBuild": RESOLVER | BUILDS | ASSEMBLY | REGISTRY | AUTH | BUSY,
    "PrepareMetadata": RESOLVER | BUILDS | AUTH | BUSY,
    "GetArtifact": {BlobNotFound, StoreError, InvalidRange, DigestMismatch, InvalidDigest} | REGISTRY | AUTH,
    "StatArtifacts": {InvalidDigest, BuilderError} | AUTH,
}
#: The statuses a BuilderError is raised with by the RPCs it can come from (checked against the sources below).
BUILDER_ERROR_RPCS = {"Build", "ResolveAndBuild", "PrepareMetadata", "GetArtifact", "StatArtifacts"}


def all_error_classes() -> set[type[ServiceError]]:
    for name in ERROR_MODULES:
        importlib.import_module(name)
    found, todo = set(), [ServiceError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.split(".")[0] in ("venvsmith", "resolver_service", "builder_service"):
                found.add(sub)
                todo.append(sub)
    return found


def reason_names() -> set[str]:
    return set(common_pb2.ErrorReason.keys())


@pytest.fixture(scope="module")
def documented(descriptor_set) -> dict[str, set[str]]:  # noqa: F811 - the imported fixture
    """Status names each RPC's own comment documents, by method name (union over services that have it)."""
    statuses = {code.name for code in grpc.StatusCode}
    found: dict[str, set[str]] = {}
    for file in descriptor_set.file:
        if not file.name.startswith("venvsmith/"):
            continue
        comments = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}
        for i, service in enumerate(file.service):
            for j, method in enumerate(service.method):
                text = comments.get((FILE_SERVICE, i, SERVICE_METHOD, j), "")
                found.setdefault(method.name, set()).update(set(re.findall(r"\b[A-Z_]{6,}\b", text)) & statuses)
    return found


def test_every_error_class_has_an_example_and_an_rpc():
    classes = all_error_classes()
    assert set(EXAMPLES) == classes, "add the new error class to EXAMPLES and RPC_ERRORS"
    assert set().union(*RPC_ERRORS.values()) == classes


def test_every_other_exception_class_is_internal_and_says_where_it_becomes_a_domain_error():
    """A new exception class (a store backend's, the HTTP client's, the resolver's) is a ServiceError with its
    status and reason, or is listed in INTERNAL_EXCEPTIONS with the place that turns it into one."""
    found = set()
    for package in SERVICE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "__main__.py":  # runs the program
                continue
            module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
            for value in vars(module).values():
                if (isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == module.__name__
                        and not issubclass(value, ServiceError)):
                    found.add(f"{value.__module__}.{value.__qualname__}")
    assert found == set(INTERNAL_EXCEPTIONS)


def test_the_builder_defines_its_errors_in_one_module():
    """Every domain error of the builder is in builder_service.errors (which imports no other builder module)."""
    elsewhere = []
    for path in sorted((ROOT / "builder_service").rglob("*.py")):
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        elsewhere += [f"{module.__name__}.{value.__qualname__}" for value in vars(module).values()
                      if isinstance(value, type) and issubclass(value, ServiceError)
                      and value.__module__ == module.__name__ != "builder_service.errors"]
    assert elsewhere == []


def test_every_rpc_documents_the_status_of_each_error_it_can_end_with(documented):
    missing = []
    for rpc, classes in RPC_ERRORS.items():
        assert rpc in documented, f"no RPC {rpc} in the protos"
        for cls in classes:
            status = EXAMPLES[cls]().status
            if status not in documented[rpc]:
                missing.append(f"{rpc}: {cls.__name__} -> {status}")
    assert not missing, "statuses not documented on the RPC:\n" + "\n".join(missing)


def test_builder_error_statuses_and_reasons_in_the_sources_are_documented(documented):
    sources = "\n".join(p.read_text() for p in (ROOT / "builder_service").glob("*.py"))
    statuses = set(re.findall(r'BuilderError\(\s*"([A-Z_]+)"', sources))
    assert {"INVALID_ARGUMENT", "FAILED_PRECONDITION", "NOT_FOUND", "OUT_OF_RANGE"} <= statuses
    for status in statuses:
        assert any(status in documented[rpc] for rpc in BUILDER_ERROR_RPCS), status
        assert BuilderError(status, "x").error_reason in reason_names(), status
    for reason in re.findall(r'reason="([A-Z_]+)"', sources):
        assert reason in reason_names(), reason


@pytest.mark.parametrize("cls", sorted(EXAMPLES, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_each_error_carries_the_details_its_status_promises(cls):
    error = EXAMPLES[cls]()
    assert isinstance(error, cls) and error.error_reason in reason_names()
    assert error.error_reason != "ERROR_REASON_UNSPECIFIED"
    status = error.to_status()
    assert status.code == getattr(grpc.StatusCode, error.status).value[0] and error.status != "INTERNAL"
    kinds = {d.TypeName().rsplit(".", 1)[1] for d in status.details}
    expected = {"ErrorInfo"}
    if error.status == "INVALID_ARGUMENT":
        expected.add("BadRequest")
    if error.status == "FAILED_PRECONDITION":
        expected.add("PreconditionFailure")
    if error.status in ("UNAVAILABLE", "RESOURCE_EXHAUSTED"):
        expected.add("RetryInfo")
    assert kinds == expected
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert (info.domain, info.reason) == ("venvsmith", error.error_reason)
    assert status_of(error) == (error.status, error.status_message()) and status_of(KeyError("x")) is None
    # In this process the caller sees the same details a remote caller decodes.
    embedded = CallError.of(error)
    assert (embedded.status, embedded.reason) == (error.status, error.error_reason)


def test_a_failed_sdist_keeps_the_reason_and_details_of_its_cause():
    """building_sdist names the sdist but keeps what the caller acts on: reason, violations, retry, log tail."""
    cause = BuildFailed("build_wheel", 3, "Traceback ...\nthe backend says no\n")
    error = SdistFailed("pkg-2.0.tar.gz", "building", cause)
    assert (error.status, error.error_reason) == ("FAILED_PRECONDITION", "BUILD_FAILED")
    assert error.message.startswith("building pkg-2.0.tar.gz failed: ")
    assert error.status_message().endswith("the backend says no\n")
    details = CallError.of(error).details
    assert details.metadata == {**cause.details().metadata, "sdist": "pkg-2.0.tar.gz"}
    assert details.violations == cause.details().violations
    full = SdistFailed("pkg-2.0.tar.gz", "building", BuilderError("RESOURCE_EXHAUSTED", "full", reason="STORE_FULL"))
    assert (full.error_reason, full.details().retry_delay) == ("STORE_FULL", 1.0)
    # A remote resolver's failure (build requirements) keeps its decoded details too.
    remote = CallError.of(EXAMPLES[NoSolution]())
    nested = SdistFailed("pkg-2.0.tar.gz", "resolving the build requirements of", remote)
    assert (nested.error_reason, nested.details().chains) == ("NO_SOLUTION", remote.details.chains)
    bad = SdistFailed("pkg-2.0.tar.gz", "building", CallError.of(EXAMPLES[InvalidInput]())).under("resolve.")
    assert [v.field for v in bad.details().field_violations] == ["resolve.requirements[0]"]


def test_builder_errors_that_used_to_be_internal_have_their_status():
    """NotRelocatable (a venv file naming the build path) is a domain error, not a bug."""
    error = NotRelocatable(Path("/w/venv/bin/x"), "/w/venv")
    assert error.to_status().code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert CallError.of(error).details.violations[0].subject == "x"


def serve(handler) -> tuple[grpc.Server, grpc.Channel]:
    server = grpc.server(futures.ThreadPoolExecutor(2))
    method = grpc.unary_unary_rpc_method_handler(handler)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", {"M": method}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, grpc.insecure_channel(f"127.0.0.1:{port}")


def test_abort_sends_details_and_a_bug_is_internal_without_them():
    errors = {b"conflict": EXAMPLES[NoSolution](), b"relocate": EXAMPLES[NotRelocatable](), b"bug": KeyError("x")}
    server, channel = serve(lambda request, context: abort(context, errors[request]))
    try:
        for key, error in errors.items():
            with pytest.raises(grpc.RpcError) as info:
                channel.unary_unary("/t.T/M")(key, timeout=10)
            decoded = CallError.from_rpc(info.value)
            if isinstance(error, ServiceError):
                assert (decoded.status, decoded.reason) == (error.status, error.error_reason)
                assert decoded.details == CallError.of(error).details
            else:
                assert decoded.status == "INTERNAL" and decoded.reason == ""
    finally:
        channel.close()
        server.stop(0)


def test_huge_errors_fit_the_default_trailer_limit():
    """A long conflict (many chains, non-ASCII text) and a long build log still reach a default client, trimmed."""
    chains = [ConflictChain(f"p{i}", tuple(f"ü{j} " * 40 for j in range(6))) for i in range(60)]
    errors = [NoSolution("no solution\n" + ("é" * 150 + "\n") * 200, chains),
              BuildFailed("build_wheel", 1, ("x" * 99 + "\n") * 2000)]
    for error in errors:
        assert sum(d.ByteSize() for d in error.to_status().details) <= MAX_DETAILS_BYTES
    server, channel = serve(lambda request, context: abort(context, errors[request[0]]))
    try:
        decoded = []
        for _ in range(20):  # above the soft limit a client rejects trailers at random
            for i, error in enumerate(errors):
                with pytest.raises(grpc.RpcError) as info:
                    channel.unary_unary("/t.T/M")(bytes([i]), timeout=10)
                decoded.append(CallError.from_rpc(info.value))
                assert (decoded[-1].status, decoded[-1].reason) == (error.status, error.error_reason)
        conflict, build = decoded[-2:]
        assert conflict.message.startswith("no solution") and conflict.details.chains
        assert int(conflict.details.metadata["violations_omitted"]) + len(conflict.details.chains) == len(chains)
        assert build.message.endswith("x" * 99 + "\n")  # a build log keeps its end
    finally:
        channel.close()
        server.stop(0)


def test_a_failed_builds_last_lines_are_a_detail_trimmed_to_whole_lines():
    """ErrorInfo.metadata["log_tail"]: the last lines of the build log that fit the details' budget (its end kept,
    whole lines), and ["build_log"] the stored log; they give way before the PreconditionFailure does."""
    from builder_service.errors import SdistFailed
    from venvsmith.core.errors import ErrorDetails

    lines = [f"warning: line {i:02d} " + "é" * 30 for i in range(1, 21)]
    cause = BuildFailed("build_wheel of pkg 1.0", 1, "\n".join(lines))
    cause.build_log = str(Digest("ab" * 32, 1234))
    error = SdistFailed("pkg-1.0.tar.gz", "building", cause)
    status = error.to_status()
    assert sum(d.ByteSize() for d in status.details) <= MAX_DETAILS_BYTES
    details = ErrorDetails.from_status(status)
    tail = details.metadata["log_tail"].split("\n")
    assert tail[-1] == lines[-1] and tail == lines[-len(tail):] and len(tail) < len(lines)
    assert details.metadata["build_log"] == f"sha256:{'ab' * 32}/1234"
    assert details.metadata["sdist"] == "pkg-1.0.tar.gz" and details.violations
    assert lines[-1] in status.message  # the message keeps the end of the log too
    short = SdistFailed("pkg-1.0.tar.gz", "building", BuildFailed("build_wheel of pkg 1.0", 1, "one\ntwo\n"))
    assert ErrorDetails.from_status(short.to_status()).metadata["log_tail"] == "one\ntwo"
