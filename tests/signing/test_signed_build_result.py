"""The builder's answer (``BuildResult``) is signed: lock key, target digest, every artifact's digest, size, media
type, kind and file name, and the venv's base interpreter. Any change to those is refused."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from venvsmith.core.signed_build import check_result, sign_result
from venvsmith.core.signing import Signer, TrustedKeys, UntrustedAnswer
from venvsmith.v1 import builder_pb2, common_pb2

_SIGNER = Signer.from_private(Ed25519PrivateKey.generate())
_TRUSTED = TrustedKeys([_SIGNER.private.public_key()])

_hex = st.text("0123456789abcdef", min_size=64, max_size=64)
_ref = st.builds(
    lambda h, size, media, kind, name: common_pb2.ArtifactRef(
        digest=common_pb2.Digest(hash=h, size_bytes=size), media_type=media, kind=kind, filename=name),
    _hex, st.integers(0, 2**40), st.sampled_from(["application/zip", "application/zstd", "text/plain"]),
    st.sampled_from(list(common_pb2.ArtifactKind.values())), st.text(min_size=1, max_size=30))


@st.composite
def results(draw) -> builder_pb2.BuildResult:
    result = builder_pb2.BuildResult(lock_key=draw(_hex), target_digest=draw(_hex))
    result.wheels.extend(draw(st.lists(_ref, min_size=1, max_size=4)))
    for field in ("wheelhouse", "venv_archive", "lock_file"):
        if draw(st.booleans()):
            getattr(result, field).CopyFrom(draw(_ref))
    if result.HasField("venv_archive"):
        result.interpreter.CopyFrom(builder_pb2.BaseInterpreter(path="/usr/bin/python3", version="3.12.1",
                                                                implementation="cpython", identity=draw(_hex)))
    return result


def _alterations(result: builder_pb2.BuildResult) -> list[builder_pb2.BuildResult]:
    """Copies of ``result`` each with one signed value changed."""
    out = []

    def altered(change) -> None:
        copy = builder_pb2.BuildResult()
        copy.CopyFrom(result)
        change(copy)
        out.append(copy)

    altered(lambda r: setattr(r, "lock_key", "0" * 64 if r.lock_key != "0" * 64 else "1" * 64))
    altered(lambda r: setattr(r, "target_digest", r.target_digest[::-1] + "x"))
    altered(lambda r: r.wheels[0].digest.__setattr__("size_bytes", r.wheels[0].digest.size_bytes + 1))
    def other_hash(r: builder_pb2.BuildResult) -> None:
        h = r.wheels[0].digest.hash
        r.wheels[0].digest.hash = ("f" if h[0] != "f" else "e") + h[1:]

    altered(other_hash)
    altered(lambda r: setattr(r.wheels[0], "media_type", r.wheels[0].media_type + "+x"))
    altered(lambda r: setattr(r.wheels[0], "filename", r.wheels[0].filename + ".evil"))
    altered(lambda r: r.wheels.add().CopyFrom(r.wheels[0]))
    altered(lambda r: r.ClearField("lock_file") if r.HasField("lock_file") else r.lock_file.CopyFrom(r.wheels[0]))
    if result.HasField("venv_archive"):
        altered(lambda r: setattr(r.venv_archive.digest, "size_bytes", r.venv_archive.digest.size_bytes + 1))
        altered(lambda r: setattr(r.interpreter, "path", "/tmp/evil/python"))
    return out


@settings(max_examples=60, deadline=None)
@given(results())
def test_a_signed_result_verifies_and_any_altered_value_is_refused(result):
    sign_result(result, _SIGNER)
    check_result(result, _TRUSTED)
    result.stats.elapsed_ms = 12.5  # not signed: timings and counters differ between identical answers
    result.http_base_url = "http://127.0.0.1:1/"
    check_result(result, _TRUSTED)
    for bad in _alterations(result):
        with pytest.raises(UntrustedAnswer, match="altered"):
            check_result(bad, _TRUSTED)


def test_unsigned_and_foreign_results_are_refused():
    result = builder_pb2.BuildResult(lock_key="a" * 64, target_digest="b" * 64)
    with pytest.raises(UntrustedAnswer, match="not signed"):
        check_result(result, _TRUSTED)
    sign_result(result, Signer.from_private(Ed25519PrivateKey.generate()))
    with pytest.raises(UntrustedAnswer, match="not a trusted key"):
        check_result(result, _TRUSTED)
    sign_result(result, None)  # no signer: left as it is
    with pytest.raises(UntrustedAnswer, match="not a trusted key"):
        check_result(result, _TRUSTED)
