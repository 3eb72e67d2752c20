"""ed25519 signatures on what the servers answer: the resolver's lock documents, the builder's action-cache entries.

A server with ``--signing-key FILE`` signs; a client (or the builder's own action cache) with ``--trusted-key FILE``
accepts only what one of those keys signed. A key id is the sha256 (hex) of the raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .file_reload import ReloadingFiles
from .reqfile import RequirementsFileError

log = logging.getLogger(__name__)

__all__ = [
    "KeyFileError",
    "Signer",
    "SigningKeyFile",
    "TrustedKeyFiles",
    "TrustedKeys",
    "UntrustedAnswer",
    "key_id",
    "load_signer",
    "load_trusted_keys",
    "lock_payload",
]

MAX_KEY_FILE_BYTES = 64 * 1024
_RAW_KEY_BYTES = 32
_LOCK_FORMAT = "venvsmith-lock-signature/1"


class KeyFileError(RequirementsFileError):
    """A ``--signing-key`` / ``--trusted-key`` file that cannot be read or holds no ed25519 key (exit 2)."""

    def __init__(self, option: str, path: str, message: str) -> None:
        super().__init__(path, 0, f"{option}: {message}")
        self.option = option


class UntrustedAnswer(Exception):
    """An answer whose signature is missing, malformed or not by a trusted key; ``reason`` says which."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what = what
        self.reason = reason


def key_id(public: Ed25519PublicKey) -> str:
    """sha256 (hex) of the raw public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _read(option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(option, path, f"cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(option, path, f"larger than {MAX_KEY_FILE_BYTES} bytes")
    return data


def _raw(data: bytes) -> bytes | None:
    """32 raw key bytes, given as such or as 64 hex digits (a trailing newline allowed)."""
    if len(data) == _RAW_KEY_BYTES:
        return data
    text = data.strip()
    if len(text) == 2 * _RAW_KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return None
    return None


@dataclass(frozen=True)
class Signer:
    """An ed25519 private key and its key id."""

    private: Ed25519PrivateKey
    key_id: str

    @classmethod
    def from_private(cls, private: Ed25519PrivateKey) -> Signer:
        return cls(private, key_id(private.public_key()))

    def sign(self, payload: bytes) -> tuple[str, bytes]:
        """``(key_id, signature)`` of ``payload``."""
        return self.key_id, self.private.sign(payload)


def load_signer(path: str, option: str = "--signing-key") -> Signer:
    """The ed25519 private key in ``path``: PEM (PKCS#8, unencrypted) or 32 raw bytes (or 64 hex digits)."""
    data = _read(option, path)
    raw = _raw(data)
    try:
        if raw is not None:
            private = Ed25519PrivateKey.from_private_bytes(raw)
        else:
            loaded = serialization.load_pem_private_key(data, password=None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise KeyFileError(option, path, f"not an ed25519 key ({type(loaded).__name__})")
            private = loaded
    except (ValueError, TypeError) as exc:
        raise KeyFileError(option, path, f"not an ed25519 private key (PEM or 32 raw bytes): {exc}") from None
    return Signer.from_private(private)


def load_public_key(path: str, option: str = "--trusted-key") -> Ed25519PublicKey:
    """The ed25519 public key in ``path``: PEM (SubjectPublicKeyInfo) or 32 raw bytes (or 64 hex digits)."""
    data = _read(option, path)
    raw = _raw(data)
    try:
        if raw is not None:
            return Ed25519PublicKey.from_public_bytes(raw)
        loaded = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(option, path, f"not an ed25519 public key (PEM or 32 raw bytes): {exc}") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise KeyFileError(option, path, f"not an ed25519 key ({type(loaded).__name__})")
    return loaded


class TrustedKeys:
    """The public keys whose signatures are accepted, by key id."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self._keys = {key_id(k): k for k in keys}

    def _current(self) -> dict[str, Ed25519PublicKey]:
        return self._keys

    def with_key(self, key: Ed25519PublicKey) -> TrustedKeys:
        """These keys and ``key``."""
        return TrustedKeys([*self._current().values(), key])

    def __bool__(self) -> bool:
        return bool(self._current())

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._current()))

    def check(self, what: str, payload: bytes, signer_key_id: str, signature: bytes) -> None:
        """Raise :class:`UntrustedAnswer` unless ``signature`` is a valid one of ``payload`` by a trusted key."""
        if not signer_key_id and not signature:
            raise UntrustedAnswer(what, "not signed (the server has no --signing-key)")
        key = self._current().get(signer_key_id)
        if key is None:
            raise UntrustedAnswer(what, f"signed by key {signer_key_id[:64]!r}, which is not a trusted key")
        try:
            key.verify(signature, payload)
        except InvalidSignature:
            raise UntrustedAnswer(what, f"bad signature by key {signer_key_id}: the answer was altered") from None

    def accepts(self, payload: bytes, signer_key_id: str, signature: bytes) -> bool:
        try:
            self.check("entry", payload, signer_key_id, signature)
        except UntrustedAnswer:
            return False
        return True


def load_trusted_keys(paths: Sequence[str], option: str = "--trusted-key") -> TrustedKeys:
    return TrustedKeys(load_public_key(p, option) for p in paths)


class SigningKeyFile:
    """``--signing-key FILE`` of a server, re-read when the file changes (a rotated key is used from the next
    answer on, no restart). A file that cannot be used once changed (half-written, gone) keeps the previous key,
    logged as an error; the first read must succeed (:class:`KeyFileError`)."""

    def __init__(self, path: str, option: str = "--signing-key") -> None:
        self.path, self.option = path, option

        def rotated(old: Signer, new: Signer) -> None:
            if new.key_id != old.key_id:
                log.warning("%s re-read: signing with key %s (was %s)", path, new.key_id, old.key_id)

        self._file = ReloadingFiles([path], lambda: load_signer(path, option), f"{option} {path}",
                                    errors=(KeyFileError,), changed=rotated)

    def current(self) -> Signer:
        return self._file.current()

    @property
    def key_id(self) -> str:
        return self.current().key_id

    @property
    def private(self) -> Ed25519PrivateKey:
        return self.current().private

    def sign(self, payload: bytes) -> tuple[str, bytes]:
        """``(key_id, signature)`` of ``payload`` by the file's current key."""
        return self.current().sign(payload)


class TrustedKeyFiles(TrustedKeys):
    """``--trusted-key FILE...`` of a server, re-read when one of the files changes; a set that cannot be read
    once changed keeps the previous keys (logged as an error)."""

    def __init__(self, paths: Sequence[str], option: str = "--trusted-key") -> None:
        self.paths, self.option = list(paths), option
        self._files = ReloadingFiles(
            self.paths, lambda: {key_id(k): k for k in (load_public_key(p, option) for p in self.paths)},
            f"trusted key files ({option})", errors=(KeyFileError,),
            changed=lambda old, new: log.info("trusted key files re-read: %d keys", len(new)))
        super().__init__(self._files.current().values())

    def _current(self) -> dict[str, Ed25519PublicKey]:
        return self._files.current()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def lock_payload(pins: Sequence[dict], target: dict, lock_key: str, requirements_txt: str, pylock_toml: str) -> bytes:
    """The bytes a resolver signs: the pins in the lock key's canonical form (sorted by name), the target, the
    lock key and the sha256 of both rendered documents (so neither can be altered either)."""
    doc = {
        "format": _LOCK_FORMAT,
        "pins": sorted(pins, key=lambda d: d["name"]),
        "target": target,
        "lock_key": lock_key,
        "requirements_txt_sha256": _sha256(requirements_txt),
        "pylock_toml_sha256": _sha256(pylock_toml),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")
