"""``serve --help`` shows the defaults, and the two servers default to different gRPC ports (resolver 50051,
builder 50052: both run on one host as they are), which the README, Makefile and deploy manifests use."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from venvsmith.cli import build_parser, main
from venvsmith.cli.serve_options import DEFAULT_PORTS, apply_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_serve_variables(monkeypatch):
    for name in [n for n in os.environ if n.startswith("VENVSMITH_")]:
        monkeypatch.delenv(name)


def effective(*argv: str):
    parser = build_parser()
    return apply_config(parser, list(argv), parser.parse_args(list(argv)))


def test_the_servers_default_to_ports_of_their_own(tmp_path, monkeypatch):
    assert effective("serve", "resolver").port == 50051
    assert effective("serve", "builder").port == 50052
    assert effective("serve", "builder", "--port", "7000").port == 7000
    config = tmp_path / "serve.toml"
    config.write_text("port = 6000\n")
    assert effective("serve", "builder", "--config", str(config)).port == 6000
    monkeypatch.setenv("VENVSMITH_PORT", "6001")
    assert effective("serve", "resolver", "--config", str(config)).port == 6001


def test_serve_help_shows_the_defaults(capsys):
    assert main(["serve", "--help"]) == 0
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    assert "default: 50051 for the resolver, 50052 for the builder" in text
    assert "(default: 127.0.0.1)" in text and "(default: 20.0)" in text and "(default: auto)" in text
    assert "(default: text)" in text
    assert "(default: None)" not in text and "(default: False)" not in text and "(default: [])" not in text


def test_readme_and_makefile_use_the_default_ports():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for service, port in DEFAULT_PORTS.items():
        for where, text in (("README.md", readme), ("Makefile", makefile)):
            for line in re.findall(rf"serve {service}[^\n]*", text):
                found = re.search(r"--port (\d+)", line)
                assert found is None or int(found.group(1)) == port, f"{where}: {line}"
    # Clients in the README reach the resolver at its port and the builder at its own.
    for address in re.findall(r"--server (\S+):(\d+)", readme):
        assert int(address[1]) in DEFAULT_PORTS.values(), address
    assert "50051 (both commands)" not in readme
