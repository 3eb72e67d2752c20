"""TLS for both servers and their clients: server credentials re-read when the files change, channel credentials,
and the client side's security settings (CA, client certificate, bearer token) from flags or the environment.

Server: ``serve ... --tls-cert FILE --tls-key FILE [--tls-client-ca FILE]`` (with a client CA, mutual TLS: a client
without a certificate signed by it is refused during the handshake). gRPC asks :class:`ServerTls` for the
certificate configuration on every new connection; the files are read again when one of them has changed
(modification time, size or inode), so a renewed certificate is served to new connections without a restart.
Connections already open keep the certificate they started with. A renewal caught half-written (key and
certificate not matching, unreadable) keeps the previous configuration (logged) until the files settle.

Client: ``--tls-ca FILE`` (or ``VENVSMITH_TLS_CA``) verifies the server against that CA; ``--tls-cert``/``--tls-key``
(or ``VENVSMITH_TLS_CERT``/``VENVSMITH_TLS_KEY``) present a client certificate; ``--token`` (or ``VENVSMITH_TOKEN``)
sends ``authorization: Bearer TOKEN`` on every call.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .auth import SecurityConfigError
from .file_reload import ReloadingFiles

log = logging.getLogger(__name__)

#: The largest certificate, key or CA bundle file read.
MAX_PEM_BYTES = 1 << 20


class TlsConfigError(SecurityConfigError):
    """A TLS file that cannot be used; the message names it."""


def _read_pem(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        p = Path(path)
        if p.stat().st_size > MAX_PEM_BYTES:
            raise TlsConfigError(f"{what} {path}: larger than {MAX_PEM_BYTES} bytes")
        data = p.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{what} {path}: cannot read: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise TlsConfigError(f"{what} {path}: not a PEM file")
    return data


class ServerTls:
    """A server's certificate, key and optional client CA, as gRPC server credentials that follow file changes."""

    def __init__(self, cert: str | os.PathLike[str], key: str | os.PathLike[str],
                 client_ca: str | os.PathLike[str] | None = None) -> None:
        self.cert, self.key = Path(cert), Path(key)
        self.client_ca = Path(client_ca) if client_ca else None
        self._lock = threading.Lock()
        self._files = [self.cert, self.key, *([self.client_ca] if self.client_ca else [])]
        # the first read must succeed: no server with unusable files
        self._config = ReloadingFiles(self._files, self._configuration, f"TLS files {self.cert}",
                                      errors=(TlsConfigError,),
                                      changed=lambda old, new: log.info("TLS certificate re-read from %s", self.cert))
        self._initial = self._config.current()
        self._ssl: ReloadingFiles[ssl.SSLContext] | None = None

    def _configuration(self) -> Any:
        import grpc

        pair = (_read_pem(self.key, "--tls-key"), _read_pem(self.cert, "--tls-cert"))
        ca = _read_pem(self.client_ca, "--tls-client-ca") if self.client_ca else None
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=ca)

    def _fetch(self) -> Any:
        """gRPC's fetcher: a new configuration when the files changed, else ``None`` (keep the current one)."""
        return self._config.current() if self._config.refresh() else None

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)
        if self.client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(self.client_ca)
        return context

    def ssl_context(self) -> ssl.SSLContext:
        """An ``ssl`` server context of the current files (for the builder's HTTP endpoint), made afresh when
        they changed; with a client CA, clients must present a certificate it signed."""
        with self._lock:
            if self._ssl is None:
                try:
                    self._ssl = ReloadingFiles(self._files, self._ssl_context, f"TLS files {self.cert}",
                                               errors=(OSError, ssl.SSLError))
                except (OSError, ssl.SSLError) as exc:
                    raise TlsConfigError(f"--tls-cert {self.cert} / --tls-key {self.key}: {exc}") from None
            reloading = self._ssl
        return reloading.current()

    def credentials(self) -> Any:
        import grpc

        return grpc.dynamic_ssl_server_credentials(
            self._initial, self._fetch, require_client_authentication=self.client_ca is not None)


@dataclass(frozen=True)
class ClientSecurity:
    """How a client reaches a server: TLS (a CA to verify it by, an optional client certificate) and a token."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    token: str | None = None

    @classmethod
    def from_env(cls, ca: str | None = None, cert: str | None = None, key: str | None = None,
                 token: str | None = None) -> ClientSecurity:
        """The given values, each defaulting to its ``VENVSMITH_*`` environment variable."""
        env = os.environ
        return cls(ca=ca or env.get("VENVSMITH_TLS_CA") or None,
                   cert=cert or env.get("VENVSMITH_TLS_CERT") or None,
                   key=key or env.get("VENVSMITH_TLS_KEY") or None,
                   token=token or env.get("VENVSMITH_TOKEN") or None)

    @classmethod
    def from_args(cls, args: Any) -> ClientSecurity:
        """From the CLI's ``--tls-ca``, ``--tls-cert``/``--tls-key`` and ``--token``, else the environment. On
        ``serve`` the ``--tls-cert``/``--tls-key`` are the server's own: its calls to another server take a
        client certificate from the environment only."""
        client_cert = getattr(args, "command", None) != "serve"
        return cls.from_env(getattr(args, "tls_ca", None),
                            getattr(args, "tls_cert", None) if client_cert else None,
                            getattr(args, "tls_key", None) if client_cert else None,
                            getattr(args, "token", None))

    def channel_credentials(self) -> Any:
        """gRPC channel credentials, or ``None`` for a plaintext channel (no CA given)."""
        if (self.cert is None) != (self.key is None):
            raise TlsConfigError("a client certificate needs both --tls-cert and --tls-key")
        if not self.ca:
            if self.cert:
                raise TlsConfigError("a client certificate needs --tls-ca (the CA of the server's certificate)")
            return None
        import grpc

        root = _read_pem(self.ca, "--tls-ca")
        key = _read_pem(self.key, "--tls-key") if self.key else None
        chain = _read_pem(self.cert, "--tls-cert") if self.cert else None
        return grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)
