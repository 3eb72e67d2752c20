"""Bearer tokens: the token file, roles, and the gRPC interceptor that checks every call.

The token file (``serve ... --auth-tokens FILE``) has one ``TOKEN ROLE [TENANT]`` per line; ``#`` starts a comment.
A token may be stored hashed as ``sha256:<64 hex>`` (the sha256 of the token's UTF-8 bytes), so the file need not
hold the secret itself. Roles, each allowing what the one before allows:

* ``resolve`` -- resolve, describe environments, read artifacts (a pull-request job's token);
* ``build``   -- also trigger builds and so write to the store (Build, ResolveAndBuild, PrepareMetadata);
* ``admin``   -- everything (methods not named below need it: the server fails closed).

Health checks stay open (probes carry no token); reflection needs ``resolve``. Tokens are compared as sha256
digests with :func:`hmac.compare_digest`. The file is re-read when its modification time, size or inode changes;
a file that no longer parses keeps the previous tokens (logged), so a bad edit cannot lock every client out.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import RoleDenied, ServiceError, Unauthenticated
from .file_reload import ReloadingFiles

log = logging.getLogger(__name__)

#: The largest token file read (a line per client is a few hundred bytes).
MAX_TOKEN_FILE_BYTES = 1 << 20
_HASHED = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
_TENANT = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


class Role(enum.IntEnum):
    """What a token may do; a higher role may do all a lower one may."""

    RESOLVE = 1
    BUILD = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class SecurityConfigError(ValueError):
    """A token or TLS file (or flag) that cannot be used; the message names it. The CLI exits 2 on it."""


class TokenFileError(SecurityConfigError):
    """A token file that cannot be read or parsed; the message names the file and the line."""


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to: its role and tenant (empty when the line names none)."""

    role: Role
    tenant: str = ""


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_tokens(text: str, source: str = "token file") -> dict[bytes, Principal]:
    """The tokens of a token file by their sha256 digest; a bad line raises :class:`TokenFileError` naming it."""
    tokens: dict[bytes, Principal] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) not in (2, 3):
            raise TokenFileError(f"{source}, line {number}: expected 'TOKEN ROLE [TENANT]', got {len(parts)} fields")
        token, role_name = parts[0], parts[1].lower()
        try:
            role = Role[role_name.upper()]
        except KeyError:
            raise TokenFileError(f"{source}, line {number}: unknown role {parts[1][:40]!r} "
                                 f"(one of: {', '.join(r.label for r in Role)})") from None
        tenant = parts[2] if len(parts) == 3 else ""
        if tenant and not _TENANT.match(tenant):
            raise TokenFileError(f"{source}, line {number}: a tenant is 1-100 letters, digits, '.', '_' or '-'")
        if m := _HASHED.match(token):
            digest = bytes.fromhex(m.group(1))
        elif token.startswith("sha256:"):
            raise TokenFileError(f"{source}, line {number}: a hashed token is sha256: and 64 hex digits")
        elif len(token) < 16:
            raise TokenFileError(f"{source}, line {number}: a token has at least 16 characters")
        else:
            digest = token_digest(token)
        if digest in tokens:
            raise TokenFileError(f"{source}, line {number}: this token is already on an earlier line")
        tokens[digest] = Principal(role, tenant)
    if not tokens:
        raise TokenFileError(f"{source}: no tokens (an empty file would lock every client out)")
    return tokens


class TokenStore:
    """The tokens of a file, re-read when the file changes (checked at most every ``interval`` seconds)."""

    def __init__(self, path: str | os.PathLike[str], *, interval: float = 0.0) -> None:
        self.path = Path(path)
        # the first read must succeed: a server does not start on a bad file
        self._file = ReloadingFiles([self.path], self._read, f"token file {self.path}", errors=(TokenFileError,),
                                    interval=interval, changed=lambda old, new: log.info(
                                        "token file %s re-read: %d tokens", self.path, len(new)))

    def _read(self) -> dict[bytes, Principal]:
        try:
            if self.path.stat().st_size > MAX_TOKEN_FILE_BYTES:
                raise TokenFileError(f"{self.path}: larger than {MAX_TOKEN_FILE_BYTES} bytes")
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise TokenFileError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise TokenFileError(f"{self.path}: not UTF-8 text") from None
        return parse_tokens(text, str(self.path))

    def _current(self) -> dict[bytes, Principal]:
        return self._file.current()

    def lookup(self, token: str) -> Principal | None:
        """The principal of ``token``, comparing digests in constant time (every entry is compared)."""
        digest = token_digest(token)
        found = None
        for known, principal in self._current().items():
            if hmac.compare_digest(known, digest):
                found = principal
        return found

    def authorize(self, method: str, token: str | None, required: Role) -> Principal:
        """The caller's principal, or :class:`Unauthenticated` / :class:`RoleDenied`."""
        if not token:
            raise Unauthenticated(method, f"{method} needs a token (Authorization: Bearer TOKEN; "
                                          "venvsmith --token or VENVSMITH_TOKEN)")
        principal = self.lookup(token)
        if principal is None:
            raise Unauthenticated(method, f"{method}: the token is not known to this server")
        if principal.role < required:
            raise RoleDenied(method, principal.role.label, required.label)
        return principal


#: The role each RPC needs, by full method name; a method not named needs ADMIN (fail closed).
#: ``None``: open to all (health checks, so that probes work without a token).
METHOD_ROLES: Mapping[str, Role | None] = {
    "/grpc.health.v1.Health/Check": None,
    "/grpc.health.v1.Health/Watch": None,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": Role.RESOLVE,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Role.RESOLVE,
    "/venvsmith.v1.ResolverService/Resolve": Role.RESOLVE,
    "/venvsmith.v1.ResolverService/ResolveStream": Role.RESOLVE,
    "/venvsmith.v1.ResolverService/DescribeEnvironment": Role.RESOLVE,
    "/venvsmith.v1.ArtifactService/GetArtifact": Role.RESOLVE,
    "/venvsmith.v1.ArtifactService/StatArtifacts": Role.RESOLVE,
    "/venvsmith.v1.BuilderService/ListEnvironments": Role.RESOLVE,
    "/venvsmith.v1.BuilderService/Build": Role.BUILD,
    "/venvsmith.v1.BuilderService/ResolveAndBuild": Role.BUILD,
    "/venvsmith.v1.BuilderService/PrepareMetadata": Role.BUILD,
}


def required_role(method: str) -> Role | None:
    return METHOD_ROLES.get(method, Role.ADMIN)


def bearer_token(metadata: Mapping[str, str] | None) -> str | None:
    """The token of an ``authorization: Bearer TOKEN`` header (case-insensitive scheme), else ``None``."""
    value = (metadata or {}).get("authorization", "")
    scheme, _, token = value.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def make_interceptor(tokens: TokenStore):
    """A ``grpc.ServerInterceptor`` that lets a call through only with a token whose role allows it."""
    import grpc
    from grpc_status import rpc_status

    def denial(error: ServiceError) -> Callable:
        def behavior(_request, context: grpc.ServicerContext):
            context.abort_with_status(rpc_status.to_status(error.to_status()))

        return behavior

    class AuthInterceptor(grpc.ServerInterceptor):
        def intercept_service(self, continuation, handler_call_details):
            method = handler_call_details.method
            required = required_role(method)
            if required is None:
                return continuation(handler_call_details)
            metadata = {k: v for k, v in handler_call_details.invocation_metadata or () if isinstance(v, str)}
            try:
                tokens.authorize(method, bearer_token(metadata), required)
            except ServiceError as exc:
                log.warning("refused %s: %s", method, exc.error_reason)
                handler = continuation(handler_call_details)
                behavior = denial(exc)
                if handler is None or (not handler.request_streaming and not handler.response_streaming):
                    return grpc.unary_unary_rpc_method_handler(behavior)
                if handler.request_streaming and handler.response_streaming:
                    return grpc.stream_stream_rpc_method_handler(behavior)
                if handler.request_streaming:
                    return grpc.stream_unary_rpc_method_handler(behavior)
                return grpc.unary_stream_rpc_method_handler(behavior)
            return continuation(handler_call_details)

    return AuthInterceptor()
