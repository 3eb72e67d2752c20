"""Translation between the wire messages (``venvsmith.v1``) and the shared domain objects."""

from __future__ import annotations

from datetime import UTC

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from venvsmith.v1 import common_pb2 as pb

from .distfile import DistFile
from .errors import InvalidInput
from .input_limits import check_filename, check_name, check_version
from .pin import Pin
from .target import TargetEnvironment


def target_to_proto(target: TargetEnvironment) -> pb.TargetEnvironment:
    return pb.TargetEnvironment(
        markers=dict(target.markers),
        tags=[str(t) for t in target.tags],
        python_version=str(target.python_version),
        platform=target.platform,
        interpreter=target.interpreter,
    )


def target_from_spec(spec: pb.TargetSpec, local: TargetEnvironment) -> TargetEnvironment:
    """Expand a request's target spec; an unset spec is the server's own interpreter (``local``)."""
    which = spec.WhichOneof("spec")
    if which == "environment":
        env = spec.environment
        return TargetEnvironment.from_mapping(env.markers, list(env.tags), env.platform, env.interpreter)
    if which == "shorthand":
        short = spec.shorthand
        if not short.python_version:
            raise InvalidInput("", "a target shorthand needs a python_version")
        return TargetEnvironment.from_shorthand(
            short.python_version, short.platform, short.implementation or "cpython"
        )
    return local


def pin_to_proto(pin: Pin) -> pb.Pin:
    file = pin.file
    msg = pb.Pin(
        name=pin.name,
        version=str(pin.version),
        extras=list(pin.extras),
        url=file.url,
        filename=file.filename,
        sha256=file.sha256 or "",
        size=file.size or 0,
        index=file.index,
        is_wheel=file.is_wheel,
        requires_python=file.requires_python or "",
        required_by=list(pin.required_by),
        dependencies=list(pin.dependencies),
    )
    if file.upload_time is not None:
        msg.upload_time.FromDatetime(file.upload_time.astimezone(UTC))
    if pin.sdist is not None:
        msg.sdist.CopyFrom(_file_ref_to_proto(pin.sdist))
    for identity in pin.attestation_identities:
        claims = {k: v for k, v in identity.items() if k != "kind"}
        msg.attestation_identities.add(kind=identity["kind"], claims=claims)
    return msg


def _file_ref_to_proto(file: DistFile) -> pb.DistFileRef:
    ref = pb.DistFileRef(
        url=file.url,
        filename=file.filename,
        sha256=file.sha256 or "",
        size=file.size or 0,
        requires_python=file.requires_python or "",
    )
    if file.upload_time is not None:
        ref.upload_time.FromDatetime(file.upload_time.astimezone(UTC))
    return ref


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _sdist_from_proto(msg: pb.Pin, index: str, name: str, version: Version) -> DistFile:
    ref = msg.sdist
    if not _is_sha256(ref.sha256):
        raise InvalidInput(ref.sha256, f"the sdist of pin {msg.name}=={msg.version} needs a lowercase hex sha256")
    sdist = DistFile.from_listing(
        ref.filename,
        ref.url,
        index,
        hashes={"sha256": ref.sha256},
        requires_python=ref.requires_python or None,
        size=ref.size or None,
        upload_time=ref.upload_time.ToDatetime(tzinfo=UTC) if ref.HasField("upload_time") else None,
    )
    if sdist is None or sdist.is_wheel or sdist.name != name or sdist.version != version:
        raise InvalidInput(ref.filename, f"not an sdist of pin {msg.name}=={msg.version}")
    return sdist


def pin_from_proto(msg: pb.Pin) -> Pin:
    """A wire pin back into the domain; raises :class:`InvalidInput` for a pin the builder cannot use."""
    check_name(msg.name, "pin name")
    check_version(msg.version, "pin version")
    check_filename(msg.filename, "pin file name")
    if not _is_sha256(msg.sha256):
        raise InvalidInput(msg.sha256, f"pin {msg.name}=={msg.version} needs a lowercase hex sha256")
    file = DistFile.from_listing(
        msg.filename,
        msg.url,
        msg.index,
        hashes={"sha256": msg.sha256},
        requires_python=msg.requires_python or None,
        size=msg.size or None,
        upload_time=msg.upload_time.ToDatetime(tzinfo=UTC) if msg.HasField("upload_time") else None,
    )
    if file is None:
        raise InvalidInput(msg.filename, "not a wheel or sdist file name")
    try:
        version = Version(msg.version)
    except InvalidVersion:
        raise InvalidInput(msg.version, f"invalid version in pin {msg.name}") from None
    if file.name != canonicalize_name(msg.name) or file.version != version:
        raise InvalidInput(msg.filename, f"file name does not match pin {msg.name}=={msg.version}")
    return Pin(
        name=file.name,
        version=file.version,
        file=file,
        extras=tuple(msg.extras),
        required_by=tuple(msg.required_by),
        dependencies=tuple(msg.dependencies),
        sdist=_sdist_from_proto(msg, file.index, file.name, file.version) if msg.HasField("sdist") else None,
        attestation_identities=tuple(
            {"kind": identity.kind, **dict(sorted(identity.claims.items()))}
            for identity in msg.attestation_identities
        ),
    )
