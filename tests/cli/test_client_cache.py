"""The node's client cache of verdicts (:mod:`venvsmith.cli.client_cache`): keyed by every input, bounded, aged."""

from __future__ import annotations

import argparse
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
