"""The node's client cache of verdicts (:mod:`venvsmith.cli.client_cache`): keyed by every input, bounded, aged."""

from __future__ import annotations

import argparse
import json
import os
import time

from venvsmith.cli import client_cache
from venvsmith.v1 import builder_pb2, common_pb2, resolver_pb2


def _inputs(**changes):
    request = resolver_pb2.ResolveRequest(requirements=["alpha"], index=common_pb2.IndexConfig(index_url="http://i/"))
    pin = common_pb2.Pin(name="alpha", version="1.0")
    interpreter = builder_pb2.BaseInterpreter(path="/usr/bin/python3", version="3.11.7", identity="a" * 64)
    for name, value in changes.items():
        if name == "index_url":
            request.index.index_url = value
        elif name == "version":
            pin.version = value
        elif name == "identity":
            interpreter.identity = value
    return request, [pin], interpreter


def test_nothing_is_kept_without_a_node_cache(monkeypatch):
    monkeypatch.delenv("VENVSMITH_NODE_CACHE", raising=False)
    args = argparse.Namespace()
    client_cache.remember_valid(args, *_inputs())
    assert client_cache.client_dir(args) is None and not client_cache.known_valid(args, *_inputs())


def test_a_verdict_is_reused_for_exactly_its_inputs(tmp_path):
    args = argparse.Namespace(node_cache=str(tmp_path))
    assert not client_cache.known_valid(args, *_inputs())
    client_cache.remember_valid(args, *_inputs())
    assert client_cache.known_valid(args, *_inputs())
    for change in ({"index_url": "http://other/"}, {"version": "1.1"}, {"identity": "b" * 64}):
        assert not client_cache.known_valid(args, *_inputs(**change)), change


def test_a_verdict_expires(tmp_path):
    args = argparse.Namespace(node_cache=str(tmp_path))
    client_cache.remember_valid(args, *_inputs())
    path = tmp_path / "client" / "verdicts" / client_cache.verdict_key(*_inputs())
    old = time.time() - client_cache.VERDICT_TTL - 1
    os.utime(path, (old, old))
    assert not client_cache.known_valid(args, *_inputs())


def test_verdicts_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(client_cache, "MAX_VERDICTS", 10)
    args = argparse.Namespace(node_cache=str(tmp_path))
    for i in range(25):
        client_cache.remember_valid(args, *_inputs(version=f"1.{i}"))
    assert len(list((tmp_path / "client" / "verdicts").iterdir())) <= 10
    assert client_cache.known_valid(args, *_inputs(version="1.24"))  # the newest stays


# -- answers -------------------------------------------------------------------------------------------------


def _answer(expires_at: str = "2999-01-01T00:00:00+00:00"):
    request = builder_pb2.ResolveAndBuildRequest(resolve=resolver_pb2.ResolveRequest(requirements=["alpha"]))
    own = resolver_pb2.ResolveRequest(requirements=["alpha"], index=common_pb2.IndexConfig(index_url="http://u:p@i/"))
    pins = [common_pb2.Pin(name="alpha", version="1.0")]
    summaries = [resolver_pb2.ResolveSummary(lock_key="k" * 64, expires_at=expires_at)]
    result = builder_pb2.BuildResult(
        lock_key="k" * 64, venv_archive=common_pb2.ArtifactRef(digest=common_pb2.Digest(hash="a" * 64, size_bytes=9)),
        interpreter=builder_pb2.BaseInterpreter(path="/usr/bin/python3", version="3.11.7"))
    return request, own, pins, summaries, result


def _args(tmp_path, **more):
    return argparse.Namespace(node_cache=str(tmp_path), server="127.0.0.1:1", token=None, tls_ca=None,
                              tls_cert=None, tls_key=None, **more)


def test_an_answer_is_kept_for_exactly_its_request_until_it_expires(tmp_path, monkeypatch):
    monkeypatch.delenv("VENVSMITH_TOKEN", raising=False)
    args = _args(tmp_path)
    request, own, pins, summaries, result = _answer()
    assert client_cache.kept_answer(args, request, own) is None
    client_cache.keep_answer(args, request, own, pins, summaries, result)
    kept = client_cache.kept_answer(args, request, own)
    assert kept is not None and kept.result == result and kept.pins == pins
    other = builder_pb2.ResolveAndBuildRequest()
    other.CopyFrom(request)
    other.options.compile_bytecode = True
    own_other = resolver_pb2.ResolveRequest()
    own_other.CopyFrom(own)
    own_other.index.index_url = "http://u:other@i/"  # other credentials: another answer
    assert client_cache.kept_answer(args, other, own) is None
    assert client_cache.kept_answer(args, request, own_other) is None
    assert client_cache.kept_answer(argparse.Namespace(**{**vars(args), "server": "127.0.0.1:2"}), request,
                                    own) is None
    assert client_cache.kept_answer(argparse.Namespace(**{**vars(args), "token": "t"}), request, own) is None
    path = tmp_path / "client" / "answers" / client_cache.answer_key(args, request, own)
    assert b"u:p" not in path.read_bytes() and b"u:other" not in path.read_bytes()  # the key hashes them
    monkeypatch.setattr(client_cache.time, "time", lambda: 33000000000.0)  # past 2999
    assert client_cache.kept_answer(args, request, own) is None


def test_an_answer_for_a_snapshot_never_expires_and_some_are_never_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("VENVSMITH_TOKEN", raising=False)
    args = _args(tmp_path)
    request, own, pins, _, result = _answer()
    client_cache.keep_answer(args, request, own, pins, [resolver_pb2.ResolveSummary(expires_at="")], result)
    monkeypatch.setattr(client_cache.time, "time", lambda: 33000000000.0)
    assert client_cache.kept_answer(args, request, own) is not None  # exclude-newer: no expiry
    monkeypatch.undo()
    monkeypatch.delenv("VENVSMITH_TOKEN", raising=False)
    for why, call in {
        "no summary": (args, [], result),
        "expired already": (args, [resolver_pb2.ResolveSummary(expires_at="2000-01-01T00:00:00+00:00")], result),
        "bad expiry": (args, [resolver_pb2.ResolveSummary(expires_at="soon")], result),
        "signatures to check": (_args(tmp_path / "t", trusted_key=["k.pub"]), _answer()[3], result),
        "no archive": (args, _answer()[3], builder_pb2.BuildResult(lock_key="x")),
    }.items():
        where, summaries, answer = call
        fresh = builder_pb2.ResolveAndBuildRequest()
        fresh.CopyFrom(request)
        fresh.resolve.requirements.append(why)
        client_cache.keep_answer(where, fresh, own, pins, summaries, answer)
        assert client_cache.kept_answer(where, fresh, own) is None, why
    monkeypatch.setattr(client_cache, "MAX_ANSWER_BYTES", 10)
    big = builder_pb2.ResolveAndBuildRequest()
    big.CopyFrom(request)
    big.resolve.requirements.append("big")
    client_cache.keep_answer(args, big, own, pins, _answer()[3], result)
    assert client_cache.kept_answer(args, big, own) is None


def test_a_damaged_answer_is_no_answer(tmp_path, monkeypatch):
    monkeypatch.delenv("VENVSMITH_TOKEN", raising=False)
    args = _args(tmp_path)
    request, own, pins, summaries, result = _answer()
    client_cache.keep_answer(args, request, own, pins, summaries, result)
    path = tmp_path / "client" / "answers" / client_cache.answer_key(args, request, own)
    good = path.read_bytes()
    head, _, rest = good.partition(b"\n")
    hostile = [json.dumps({"expires": None, "sizes": sizes}).encode() + b"\n" + rest
               for sizes in ([1 << 50, 1], [-1, 5], [1, 2, 3], [])]  # claims nothing may allocate or read
    for damaged in (b"", b"{", head + b"\n" + rest[:5], head.replace(b'"sizes"', b'"sizes_"') + b"\n" + rest,
                    head + b"\n" + b"\xff" * len(rest), *hostile):
        path.write_bytes(damaged)
        assert client_cache.kept_answer(args, request, own) is None, damaged[:40]
