"""The HTTP wheelhouse as an index (item 6): PEP 691 JSON by content negotiation next to PEP 503 HTML, PEP 503
redirects, PEP 658/714 ``.metadata`` files — and real pip and uv resolving from it without downloading a wheel.

The builder runs in this process (no resolution needed: the wheels are put in its store and recorded under a lock
key, as a build does), so the test reads the HTTP server's request log.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from builder_service.action_cache import OutputRef
from builder_service.engine import BuildEngine, BuilderSettings
from builder_service.http_server import BlobHttpServer
from tests.fixtures.dists import build_wheel

JSON = "application/vnd.pypi.simple.v1+json"
LOCK_KEY = hashlib.sha256(b"a lock key").hexdigest()
BIN = Path(sys.executable).parent


class House:
    def __init__(self, engine: BuildEngine, http: BlobHttpServer, wheels: dict[str, Path]) -> None:
        self.engine, self.http, self.wheels = engine, http, wheels
        self.root = f"{http.base_url}wheelhouse/{LOCK_KEY}/simple/"

    def get(self, url: str, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request, redirects not followed."""
        parts = urlsplit(urljoin(self.root, url))
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request("GET", parts.path, headers={"Accept": accept} if accept else {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


def metadata_of(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA")))


@pytest.fixture(scope="module")
def house(tmp_path_factory) -> Iterator[House]:
    tmp = tmp_path_factory.mktemp("wheelhouse-index")
    with pytest.MonkeyPatch.context() as mp:
        for var in list(os.environ):
            if var.startswith(("PIP_", "VENVSMITH_", "UV_")):
                mp.delenv(var)
        mp.setenv("PIP_CONFIG_FILE", os.devnull)
        wheels = {
            "alpha": build_wheel(tmp / "dist", "alpha", "1.0", requires_dist=["beta>=1", "Zed_Pkg"],
                                 requires_python=">=3.8"),
            "beta": build_wheel(tmp / "dist", "beta", "1.0"),
            "zed-pkg": build_wheel(tmp / "dist", "Zed_Pkg", "2.0"),
        }
        engine = BuildEngine(BuilderSettings(home=tmp / "home"))
        refs = [OutputRef(engine.store.put_file(path), "application/zip", "wheel", path.name)
                for path in wheels.values()]
        engine.environments.remember_wheels(LOCK_KEY, refs)
        http = BlobHttpServer(engine).start()
        try:
            yield House(engine, http, wheels)
        finally:
            http.stop()
            engine.close()


@pytest.fixture
def requests(caplog) -> list[str]:
    """Paths the HTTP server answered during the test."""
    caplog.set_level(logging.DEBUG, logger="builder_service.http_server")

    class Paths(list):
        def __iter__(self):
            return iter([r.getMessage().split()[1] for r in caplog.records if r.name == "builder_service.http_server"
                         and r.getMessage().startswith(("GET", "HEAD"))])

    return Paths()


def test_json_by_content_negotiation(house):
    status, headers, body = house.get(house.root, JSON)
    assert status == 200 and headers["Content-Type"] == JSON and headers["Vary"] == "Accept"
    root = json.loads(body)
    assert root["meta"]["api-version"].startswith("1.")
    assert [p["name"] for p in root["projects"]] == ["alpha", "beta", "zed-pkg"]
    status, headers, body = house.get("alpha/", f"{JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01")
    assert status == 200 and headers["Content-Type"] == JSON
    page = json.loads(body)
    wheel = house.wheels["alpha"]
    data = wheel.read_bytes()
    (entry,) = page["files"]
    assert page["name"] == "alpha" and page["versions"] == ["1.0"]
    assert entry["filename"] == wheel.name and entry["size"] == len(data)
    assert entry["hashes"] == {"sha256": hashlib.sha256(data).hexdigest()}
    assert entry["requires-python"] == ">=3.8"
    assert entry["core-metadata"] == {"sha256": hashlib.sha256(metadata_of(wheel)).hexdigest()}
    status, _, served = house.get(urljoin(house.root + "alpha/", entry["url"]))
    assert status == 200 and served == data


def test_html_stays_the_default_and_carries_core_metadata(house):
    for accept, content_type in ((None, "text/html"), ("text/html", "text/html"),
                                 ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.v1+html"),
                                 ("*/*", "text/html")):
        status, headers, body = house.get("alpha/", accept)
        assert status == 200 and headers["Content-Type"].split(";")[0] == content_type, accept
        assert headers["Vary"] == "Accept"
    text = body.decode()
    meta = hashlib.sha256(metadata_of(house.wheels["alpha"])).hexdigest()
    assert f'data-core-metadata="sha256={meta}"' in text and f'data-dist-info-metadata="sha256={meta}"' in text
    assert 'data-requires-python="&gt;=3.8"' in text
    assert house.get("alpha/", "application/json")[0] == 406


def test_pep503_redirects(house):
    base = f"/wheelhouse/{LOCK_KEY}/simple"
    for path, location in ((base, f"{base}/"), (f"{base}/alpha", f"{base}/alpha/"),
                           (f"{base}/Zed_Pkg/", f"{base}/zed-pkg/"), (f"{base}/Zed.Pkg", f"{base}/zed-pkg/")):
        status, headers, _ = house.get(path)
        assert (status, headers.get("Location")) == (301, location), path
    assert house.get(f"{base}/nothere/")[0] == 404
    assert house.get(f"{base}/a%0d%0aX:1/")[0] == 404  # never echoed into a header


def test_metadata_files(house):
    for name, wheel in house.wheels.items():
        _, _, body = house.get(f"{name}/", JSON)
        (entry,) = json.loads(body)["files"]
        status, _, served = house.get(urljoin(house.root, entry["url"]) + ".metadata")
        assert status == 200 and served == metadata_of(wheel)
        assert hashlib.sha256(served).hexdigest() == entry["core-metadata"]["sha256"]
    missing = hashlib.sha256(b"x").hexdigest()
    assert house.get(f"/blobs/{missing}/1/x-1.0-py3-none-any.whl.metadata")[0] == 404
    lock = house.engine.store.put_bytes(b"not a zip")
    assert house.get(f"/blobs/{lock.hash}/{lock.size_bytes}/x-1.0-py3-none-any.whl.metadata")[0] == 404


def hermetic(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VENVSMITH_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1", UV_CACHE_DIR=str(tmp / "uv-cache"),
               PIP_CACHE_DIR=str(tmp / "pip-cache"), HOME=str(tmp))
    return env


def only_metadata_was_read(paths: list[str]) -> None:
    assert any(p.endswith(".whl.metadata") for p in paths), paths
    assert not [p for p in paths if p.endswith(".whl")], f"wheels were downloaded: {paths}"


def test_pip_resolves_from_metadata_without_downloading_wheels(house, requests, tmp_path):
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [str(BIN / "pip"), "install", "--dry-run", "--ignore-installed", "--disable-pip-version-check",
         "--index-url", house.root, "--report", str(report), "alpha"],
        capture_output=True, text=True, env=hermetic(tmp_path), timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    installed = {i["metadata"]["name"]: i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    assert installed == {"alpha": "1.0", "beta": "1.0", "Zed_Pkg": "2.0"}
    only_metadata_was_read(list(requests))


def test_uv_resolves_from_metadata_without_downloading_wheels(house, requests, tmp_path):
    (tmp_path / "in.txt").write_text("alpha\n")
    proc = subprocess.run(
        [str(BIN / "uv"), "pip", "compile", "--no-config", "--index-url", house.root, "--python", sys.executable,
         "--no-header", "--no-annotate", str(tmp_path / "in.txt")],
        capture_output=True, text=True, env=hermetic(tmp_path), timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.findall(r"^(\S+)==(\S+)$", proc.stdout, re.M) == [("alpha", "1.0"), ("beta", "1.0"), ("zed-pkg", "2.0")]
    only_metadata_was_read(list(requests))
    assert any(p.endswith("/simple/alpha/") for p in requests)


def test_uv_and_pip_install_from_it(house, tmp_path):
    env = hermetic(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([str(BIN / "uv"), "venv", "--no-config", "--python", sys.executable, str(venv)],
                   check=True, capture_output=True, env=env, timeout=120)
    proc = subprocess.run([str(BIN / "uv"), "pip", "install", "--no-config", "--python", str(venv / "bin" / "python"),
                           "--index-url", house.root, "alpha"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import alpha, beta, zed_pkg"], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    target = tmp_path / "target"
    proc = subprocess.run([str(BIN / "pip"), "install", "--disable-pip-version-check", "--target", str(target),
                           "--index-url", house.root, "alpha"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert {"alpha", "beta", "zed_pkg"} <= {p.name for p in target.iterdir()}


def test_html_and_json_pages_say_the_same_to_our_own_index_client(house):
    """Both formats, parsed by the resolver's page parser, list the same files with the same facts."""
    from packaging.utils import canonicalize_name

    from venvsmith.core.index.pages import parse_project_page

    url = house.root + "alpha/"
    listed = {}
    for accept in (JSON, "text/html"):
        _, headers, body = house.get(url, accept)
        (file,) = parse_project_page(body, headers["Content-Type"], url, house.root, canonicalize_name("alpha"))
        listed[accept] = (file.url, dict(file.hashes), file.requires_python, file.size if accept == JSON else None,
                          file.core_metadata, dict(file.core_metadata_hashes))
    data = house.wheels["alpha"].read_bytes()
    assert listed[JSON][1:] == ({"sha256": hashlib.sha256(data).hexdigest()}, ">=3.8", len(data), True,
                                {"sha256": hashlib.sha256(metadata_of(house.wheels["alpha"])).hexdigest()})
    assert listed["text/html"][:3] == listed[JSON][:3] and listed["text/html"][4:] == listed[JSON][4:]


@pytest.mark.parametrize(("accept", "expected"), [
    (None, ("html", "text/html; charset=utf-8")),
    ("", ("html", "text/html; charset=utf-8")),
    (f"{JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01", ("json", JSON)),
    ("application/vnd.pypi.simple.latest+json", ("json", JSON)),
    (f"text/html, {JSON};q=0.5", ("html", "text/html; charset=utf-8")),
    (f"application/vnd.pypi.simple.v1+html, {JSON};q=0.9", ("html", "application/vnd.pypi.simple.v1+html")),
    (f"{JSON};q=0, text/html;q=0.1", ("html", "text/html; charset=utf-8")),
    ("*/*", ("html", "text/html; charset=utf-8")),
    (f"*/*, {JSON}", ("json", JSON)),
    (f"{JSON};q=bogus, text/html;q=0.1", ("html", "text/html; charset=utf-8")),
    ("application/json", None),
    (f"{JSON};q=0", None),
])
def test_negotiate(accept, expected):
    from builder_service.wheelhouse import negotiate

    assert negotiate(accept) == expected
