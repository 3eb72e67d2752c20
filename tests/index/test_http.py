"""The HTTP client's TLS trust configuration and identity."""

from __future__ import annotations

import ssl
import subprocess
import sys

import certifi

from venvsmith.core.index import http, transport


def test_ca_bundle_from_pip_environment_in_pip_precedence(monkeypatch):
    seen = []
    real = ssl.create_default_context

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(transport.ssl, "create_default_context", spy)
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ignored.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ignored-too.pem")
    monkeypatch.setenv("PIP_CERT", certifi.where())
    assert isinstance(transport.ssl_context(), ssl.SSLContext)
    assert seen == [{"cafile": certifi.where()}]
    seen.clear()
    transport.ssl_context(ca_bundle=certifi.where())  # an explicit bundle wins over the environment
    assert seen == [{"cafile": certifi.where()}]


def test_default_trust_without_environment(monkeypatch):
    for name in transport.CA_BUNDLE_ENV:
        monkeypatch.delenv(name, raising=False)
    context = transport.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_user_agent_names_venvsmith():
    assert http.USER_AGENT.startswith("venvsmith/")


def test_making_a_client_imports_no_http_library():
    code = (
        "import sys; from venvsmith.core.index.http import HttpClient; HttpClient(timeout=1).close(); "
        "assert not {'urllib3', 'httpx'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
