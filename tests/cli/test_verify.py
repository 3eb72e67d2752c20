"""``venvsmith verify LOCK``: a lock checked against the client's own indexes (hashes, first-index rule,
requirements, dependency closure), with the exit status 0 valid / 1 invalid / 2 bad input.

Hermetic: the indexes are this module's (file:// simple trees and one local HTTP server); the locks are written
by ``venvsmith resolve`` and then altered as a lying server would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import hermetic, run  # noqa: F401 - hermetic: autouse fixture
from tests.fixtures.index import IndexBuilder, IndexServer

LINUX = ["--python-version", "3.11", "--platform", "x86_64-manylinux_2_28"]


@pytest.fixture(scope="module")
def public(tmp_path_factory) -> IndexBuilder:
    b = IndexBuilder(tmp_path_factory.mktemp("verify-public"))
    b.add("app", "1.0", deps=["lib>=1", "tiny[fast]"])
    b.add("lib", "1.0")
    b.add("lib", "2.0")
    b.add("tiny", "0.3", extras={"fast": ["speed"]})
    b.add("speed", "1.0")
    b.add("other", "1.0")
    b.add("corp-secret", "1.0")  # the public squatter of a private name
    return b


@pytest.fixture(scope="module")
def private(tmp_path_factory) -> IndexBuilder:
    b = IndexBuilder(tmp_path_factory.mktemp("verify-private"))
    b.add("corp-secret", "1.0", files={"corp_secret/__init__.py": b"GENUINE = True\n"})
    return b


@pytest.fixture(scope="module")
def http_index(public: IndexBuilder) -> Iterator[IndexServer]:
    with IndexServer(public) as server:
        yield server


def _lock(capsys, tmp_path: Path, fmt: str, *argv: str) -> Path:
    out = tmp_path / ("pylock.toml" if fmt == "pylock" else "requirements.txt")
    code, _, err = run(capsys, "resolve", "--isolated", *LINUX, "--format", fmt, "-o", str(out), *argv)
    assert code == 0, err
    return out


def _verify(capsys, *argv: str) -> tuple[int, str]:
    code, out, err = run(capsys, "verify", "--isolated", *LINUX, *argv)
    return code, out + err


@pytest.mark.parametrize("fmt", ["pylock", "requirements"])
def test_a_good_lock_verifies(capsys, tmp_path, public, fmt):
    lock = _lock(capsys, tmp_path, fmt, "-i", public.simple_url(), "app")
    code, text = _verify(capsys, "-i", public.simple_url(), str(lock), "app")
    assert code == 0, text
    assert "valid" in text


def test_a_good_lock_verifies_over_http(capsys, tmp_path, http_index):
    lock = _lock(capsys, tmp_path, "pylock", "-i", http_index.url, "app")
    code, text = _verify(capsys, "-i", http_index.url, str(lock), "app")
    assert code == 0, text


def _tamper_first_hash(path: Path, name: str) -> str:
    """Replace the sha256 of ``name``'s entry (a lying server's answer); returns the forged hash."""
    text = path.read_text()
    forged = "ab" * 32
    if path.suffix == ".toml":
        block = re.search(rf'(?ms)^name = "{name}"$.*?sha256 = "([0-9a-f]{{64}})"', text)
    else:
        block = re.search(rf"(?ms)^{name}(?:\[[^\]]*\])?==.*?sha256:([0-9a-f]{{64}})", text)
    assert block, text
    path.write_text(text.replace(block.group(1), forged))
    return forged


@pytest.mark.parametrize("fmt", ["pylock", "requirements"])
def test_a_tampered_sha256_is_invalid_and_names_the_pin(capsys, tmp_path, public, fmt):
    lock = _lock(capsys, tmp_path, fmt, "-i", public.simple_url(), "app")
    forged = _tamper_first_hash(lock, "lib")
    code, text = _verify(capsys, "-i", public.simple_url(), str(lock), "app")
    assert code == 1, text
    assert "lib==2.0" in text and forged in text


def test_an_extra_package_is_invalid(capsys, tmp_path, public):
    lock = _lock(capsys, tmp_path, "pylock", "-i", public.simple_url(), "app", "other")
    code, text = _verify(capsys, "-i", public.simple_url(), str(lock), "app")
    assert code == 1, text
    assert "extra: other==1.0" in text


def _drop_package(path: Path, name: str) -> None:
    text = path.read_text()
    blocks = text.split("\n[[packages]]\n")
    kept = [b for b in blocks if not b.startswith(f'name = "{name}"\n')]
    assert len(kept) == len(blocks) - 1
    path.write_text("\n[[packages]]\n".join(kept))


def test_a_missing_dependency_is_invalid(capsys, tmp_path, public):
    lock = _lock(capsys, tmp_path, "pylock", "-i", public.simple_url(), "app")
    _drop_package(lock, "speed")  # asked only through tiny[fast]: the extras along the chain count
    code, text = _verify(capsys, "-i", public.simple_url(), str(lock), "app")
    assert code == 1, text
    assert "missing: tiny==0.3 requires speed" in text


def test_a_version_not_satisfying_a_requirement_is_invalid(capsys, tmp_path, public):
    lock = _lock(capsys, tmp_path, "pylock", "-i", public.simple_url(), "app")
    code, text = _verify(capsys, "-i", public.simple_url(), str(lock), "app", "lib<2")
    assert code == 1, text
    assert "lib==2.0 does not satisfy lib<2 (required by you)" in text


def test_a_downgraded_dependency_edge_is_invalid(capsys, tmp_path, public):
    """The lock pins lib 1.0 with its real hash; app needs lib>=1 so that edge holds, but the user asks lib>=2."""
    lock = _lock(capsys, tmp_path, "requirements", "-i", public.simple_url(), "app", "lib<2")
    code, text = _verify(capsys, "-i", public.simple_url(), str(lock), "app", "lib>=2")
    assert code == 1, text
    assert "lib==1.0 does not satisfy lib>=2" in text


def test_first_index_a_pin_from_the_public_index_of_a_private_name_is_invalid(capsys, tmp_path, public, private):
    lock = _lock(capsys, tmp_path, "pylock", "-i", public.simple_url(), "corp-secret")
    code, text = _verify(capsys, "-i", public.simple_url(), "--extra-index-url", private.simple_url(), str(lock))
    assert code == 1, text
    assert "corp-secret==1.0" in text and "is not the hash" in text
    # The same lock against the configuration it was made with is valid: the check is the client's configuration.
    code, text = _verify(capsys, "-i", public.simple_url(), str(lock))
    assert code == 0, text


def test_the_lock_naming_another_index_is_invalid(capsys, tmp_path, public, private):
    """Same bytes on two indexes: the hash matches, but the lock says it came from an index that is not the one
    this client's configuration takes the name from."""
    lock = _lock(capsys, tmp_path, "pylock", "-i", private.simple_url(), "corp-secret")
    text, count = re.subn(r'(?m)^index = ".*"$', 'index = "https://elsewhere.invalid/simple"', lock.read_text())
    assert count == 1
    lock.write_text(text)
    code, out = _verify(capsys, "-i", private.simple_url(), str(lock))
    assert code == 1, out
    assert "the lock names index https://elsewhere.invalid/simple" in out


def test_a_lock_for_another_python_is_invalid(capsys, tmp_path, public):
    lock = _lock(capsys, tmp_path, "pylock", "-i", public.simple_url(), "app")
    code, text = _verify(capsys, "--python-version", "3.12", "-i", public.simple_url(), str(lock), "app")
    assert code == 1, text
    assert "the lock requires Python ==3.11.*; the target is 3.12" in text


@pytest.mark.parametrize(("content", "message"), [
    (None, "pylock.toml: cannot read"),
    ("lock-version = \n", "pylock.toml: invalid TOML"),
    ('lock-version = "1.0"\n[[packages]]\nname = 3\n', "pylock.toml: not a valid pylock"),
])
def test_bad_input_exits_2(capsys, tmp_path, public, content, message):
    lock = tmp_path / "pylock.toml"
    if content is not None:
        lock.write_text(content)
    code, text = _verify(capsys, "-i", public.simple_url(), str(lock))
    assert code == 2, text
    assert message in text


def test_a_requirements_line_without_a_hash_is_bad_input(capsys, tmp_path, public):
    lock = tmp_path / "requirements.txt"
    lock.write_text("lib==2.0\n")
    code, text = _verify(capsys, "-i", public.simple_url(), str(lock))
    assert code == 2, text
    assert "no --hash" in text


def test_a_pylock_without_requirements_takes_the_unrequired_pins_as_roots(capsys, tmp_path, public):
    lock = _lock(capsys, tmp_path, "pylock", "-i", public.simple_url(), "app", "other")
    code, text = _verify(capsys, "-i", public.simple_url(), str(lock))
    assert code == 0, text
    _drop_package(lock, "lib")  # still missing: app requires it
    code, text = _verify(capsys, "-i", public.simple_url(), str(lock))
    assert code == 1 and "missing: app==1.0 requires lib>=1" in text, text


def test_a_pylock_package_whose_marker_is_false_is_not_for_this_target(capsys, tmp_path, public):
    lock = _lock(capsys, tmp_path, "pylock", "-i", public.simple_url(), "app", "other")
    text = lock.read_text().replace('name = "other"\n', 'name = "other"\nmarker = "sys_platform == \'win32\'"\n')
    lock.write_text(text)
    code, out = _verify(capsys, "-i", public.simple_url(), str(lock), "app")
    assert code == 0, out  # not installed on linux: not an extra package there
    code, out = _verify(capsys, "--platform", "windows", "-i", public.simple_url(), str(lock), "app")
    assert code == 1 and "extra: other==1.0" in out, out


def test_a_forged_pin_does_not_make_its_dependencies_extra(capsys, tmp_path, public):
    lock = _lock(capsys, tmp_path, "pylock", "-i", public.simple_url(), "app")
    _tamper_first_hash(lock, "tiny")  # tiny's metadata is not read: speed (only tiny[fast] needs it) is unknown
    code, text = _verify(capsys, "-i", public.simple_url(), str(lock), "app")
    assert code == 1, text
    assert "tiny==0.3" in text and "extra:" not in text
    assert "the dependencies of tiny==0.3 are unknown" in text
