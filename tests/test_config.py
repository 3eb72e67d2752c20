"""venvsmith.core.config reads pip's index configuration exactly as pip does, and keeps state under VENVSMITH_HOME.

Every scenario is checked against pip itself, run in the same (monkeypatched) environment: its
``Configuration(isolated=False)`` with ``pip install``'s section order, and ``pip install``'s own parsed options.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from platformdirs import user_cache_dir

from venvsmith.core.config import PipIndexConfig, default_index_url, read_pip_config, venvsmith_home

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix configuration layout")


@pytest.fixture
def pipenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment where pip finds configuration only under ``tmp_path`` (plus the machine's /etc/pip.conf,
    which both readers see alike): no PIP_* variables, HOME, XDG dirs and sys.prefix inside tmp_path."""
    for var in list(os.environ):
        if var.startswith("PIP_") or var.startswith("XDG_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg-dirs" / "none"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    return tmp_path


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def pip_configuration_view() -> PipIndexConfig:
    """What pip's Configuration loads, applied in ``pip install``'s order: [global], [install], PIP_*."""
    from pip._internal.configuration import Configuration
    from pip._internal.utils.misc import strtobool

    configuration = Configuration(isolated=False)
    configuration.load()
    sections: dict[str, dict[str, str]] = {"global": {}, "install": {}, ":env:": {}}
    for first, second in configuration.items():
        # pip < 26 yields ("section.key", value); pip >= 26 yields (file name, {"section.key": value}) per file.
        pairs = second.items() if isinstance(second, dict) else [(first, second)]
        for section_key, value in pairs:
            section, key = section_key.split(".", 1)
            if section in sections:
                sections[section][key] = value  # a later file's empty value hides an earlier one
    for section in sections.values():
        for key in [k for k, v in section.items() if not v]:
            del section[key]
    values: dict[str, str] = {}
    for section in ("global", "install", ":env:"):
        values.update(sections[section])
    return PipIndexConfig(
        index_url=values.get("index-url") or None,
        extra_index_urls=tuple(values.get("extra-index-url", "").split()),
        find_links=tuple(values.get("find-links", "").split()),
        no_index=bool(strtobool(values.get("no-index", "no"))),
    )


def pip_install_options() -> tuple[str, tuple[str, ...], tuple[str, ...], bool]:
    """``pip install``'s parsed defaults: the ground truth the configuration view must agree with."""
    from pip._internal.commands import create_command

    options, _ = create_command("install").parse_args([])
    return options.index_url, tuple(options.extra_index_urls), tuple(options.find_links), options.no_index


def assert_same_as_pip() -> PipIndexConfig:
    ours = read_pip_config(dict(os.environ))
    assert read_pip_config() == ours  # the default argument is os.environ
    theirs = pip_configuration_view()
    key = lambda c: (c.index_url, c.extra_index_urls, c.find_links, c.no_index)  # noqa: E731
    assert key(ours) == key(theirs)
    assert (default_index_url(ours), ours.extra_index_urls, ours.find_links, ours.no_index) == pip_install_options()
    return ours


SCENARIOS = {
    "nothing": ({}, {}),
    "legacy-user-file": ({"home/.pip/pip.conf": "[global]\nindex-url = http://legacy/simple\n"}, {}),
    "new-user-file-overrides-legacy": (
        {
            "home/.pip/pip.conf": "[global]\nindex-url = http://legacy/simple\nfind-links = /legacy\n",
            "home/.config/pip/pip.conf": "[global]\nindex-url = http://new/simple\n",
        },
        {},
    ),
    "xdg-config-home": (
        {
            "home/.config/pip/pip.conf": "[global]\nindex-url = http://not-read/simple\n",
            "xdg-home/pip/pip.conf": "[global]\nindex-url = http://xdg/simple\nno-index = true\n",
        },
        {"XDG_CONFIG_HOME": "{tmp}/xdg-home"},
    ),
    "blank-xdg-config-home-means-dot-config": (
        {"home/.config/pip/pip.conf": "[global]\nextra-index-url = http://dot-config/simple\n"},
        {"XDG_CONFIG_HOME": "  "},
    ),
    "xdg-config-dirs-later-wins": (
        {
            "xdg-dirs/a/pip/pip.conf": "[global]\nindex-url = http://a/simple\nfind-links = /a\n",
            "xdg-dirs/b/pip/pip.conf": "[global]\nindex-url = http://b/simple\n",
        },
        {"XDG_CONFIG_DIRS": "{tmp}/xdg-dirs/a" + os.pathsep + "{tmp}/xdg-dirs/b"},
    ),
    "user-overrides-global": (
        {
            "xdg-dirs/a/pip/pip.conf": "[global]\nindex-url = http://global/simple\n",
            "home/.config/pip/pip.conf": "[global]\nindex-url = http://user/simple\n",
        },
        {"XDG_CONFIG_DIRS": "{tmp}/xdg-dirs/a"},
    ),
    "site-overrides-user": (
        {
            "home/.config/pip/pip.conf": "[global]\nindex-url = http://user/simple\nfind-links = /user\n",
            "prefix/pip.conf": "[global]\nindex-url = http://site/simple\n",
        },
        {},
    ),
    "pip-config-file-replaces-user-files": (
        {
            "home/.config/pip/pip.conf": "[global]\nfind-links = /user-only\n",
            "prefix/pip.conf": "[global]\nindex-url = http://site/simple\n",
            "custom.conf": "[global]\nindex-url = http://custom/simple\n",
        },
        {"PIP_CONFIG_FILE": "{tmp}/custom.conf"},
    ),
    "missing-pip-config-file-keeps-user-files": (
        {"home/.config/pip/pip.conf": "[global]\nfind-links = /user\n"},
        {"PIP_CONFIG_FILE": "{tmp}/does-not-exist.conf"},
    ),
    "devnull-loads-no-file-but-env": (
        {
            "home/.config/pip/pip.conf": "[global]\nindex-url = http://user/simple\n",
            "prefix/pip.conf": "[global]\nno-index = 1\n",
        },
        {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": "/env-links"},
    ),
    "install-section-overrides-global-of-later-file": (
        {
            "xdg-dirs/a/pip/pip.conf": "[install]\nindex-url = http://install/simple\n",
            "home/.config/pip/pip.conf": "[global]\nindex-url = http://user/simple\n",
            "custom.conf": "[global]\nindex-url = http://global/simple\n[freeze]\nindex-url = http://freeze/\n",
        },
        {"PIP_CONFIG_FILE": "{tmp}/custom.conf", "XDG_CONFIG_DIRS": "{tmp}/xdg-dirs/a"},
    ),
    "install-section-same-file": (
        {"home/.config/pip/pip.conf": "[install]\nno-index = yes\nfind-links = /i\n[global]\nfind-links = /g\n"},
        {},
    ),
    "env-overrides-every-file": (
        {"home/.config/pip/pip.conf": "[install]\nindex-url = http://file/simple\nextra-index-url = http://x/\n"},
        {"PIP_INDEX_URL": "http://env/simple", "PIP_EXTRA_INDEX_URL": "http://e1/  http://e2/",
         "PIP_NO_INDEX": "off"},
    ),
    "empty-env-value-is-ignored": (
        {"home/.config/pip/pip.conf": "[global]\nextra-index-url = http://kept/simple\n"},
        {"PIP_EXTRA_INDEX_URL": "", "PIP_INDEX_URL": ""},
    ),
    "empty-value-in-later-file-hides-earlier": (
        {
            "home/.config/pip/pip.conf": "[global]\nindex-url = http://user/simple\n",
            "prefix/pip.conf": "[global]\nindex-url =\n",
        },
        {},
    ),
    "multi-line-and-underscore-keys": (
        {"home/.config/pip/pip.conf": "[global]\nextra_index_url =\n    http://m1/simple\n    http://m2/simple\n"
                                      "Find_Links = /f1 /f2\n"},
        {},
    ),
    "no-index-spellings": (
        {"home/.config/pip/pip.conf": "[global]\nno-index = t\n"},
        {},
    ),
    "env-no-index-y": ({}, {"PIP_NO_INDEX": "y"}),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_read_pip_config_matches_pip(pipenv: Path, monkeypatch: pytest.MonkeyPatch, name: str):
    files, env = SCENARIOS[name]
    write(pipenv, files)
    for var, value in env.items():
        monkeypatch.setenv(var, value.replace("{tmp}", str(pipenv)))
    assert_same_as_pip()


def test_expected_values_of_some_scenarios(pipenv: Path, monkeypatch: pytest.MonkeyPatch):
    """Beyond agreeing with pip, the values are the ones pip's documentation promises."""
    write(pipenv, {
        "home/.config/pip/pip.conf": "[install]\nindex-url = http://install/simple\n",
        "custom.conf": "[global]\nindex-url = http://global/simple\nextra-index-url = http://a/ http://b/\n",
    })
    monkeypatch.setenv("PIP_CONFIG_FILE", str(pipenv / "custom.conf"))
    config = assert_same_as_pip()
    # The existing PIP_CONFIG_FILE replaced the user file, so its [install] section is not read.
    assert config.index_url == "http://global/simple"
    assert config.extra_index_urls == ("http://a/", "http://b/")
    assert config.origins["index-url"].startswith("global.index-url (")

    monkeypatch.setenv("PIP_CONFIG_FILE", str(pipenv / "gone.conf"))
    config = assert_same_as_pip()
    assert config.index_url == "http://install/simple" and config.extra_index_urls == ()
    assert "install.index-url" in config.origins["index-url"]

    monkeypatch.setenv("PIP_FIND_LINKS", "/one /two")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    config = assert_same_as_pip()
    assert config.find_links == ("/one", "/two") and config.no_index
    assert config.origins["find-links"] == ":env:.find-links (PIP_FIND_LINKS)"


def test_devnull_ignores_every_file(pipenv: Path, monkeypatch: pytest.MonkeyPatch):
    write(pipenv, {"home/.config/pip/pip.conf": "[global]\nindex-url = http://user/simple\n",
                   "prefix/pip.conf": "[install]\nextra-index-url = http://site/\n"})
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    config = assert_same_as_pip()
    assert config.index_url is None and config.extra_index_urls == () and config.cert is None
    monkeypatch.setenv("PIP_INDEX_URL", "http://env/simple")
    assert assert_same_as_pip().index_url == "http://env/simple"


def test_cert_and_client_cert_as_pip_install_reads_them(pipenv: Path, monkeypatch: pytest.MonkeyPatch):
    from pip._internal.commands import create_command

    write(pipenv, {"home/.config/pip/pip.conf": "[global]\ncert = /etc/corp-ca.pem\nclient-cert = /etc/a.pem\n"})
    monkeypatch.setenv("PIP_CLIENT_CERT", "/etc/agent.pem")
    config = read_pip_config()
    options, _ = create_command("install").parse_args([])
    assert (config.cert, config.client_cert) == (options.cert, options.client_cert) == ("/etc/corp-ca.pem",
                                                                                       "/etc/agent.pem")


def test_environ_argument_is_used_instead_of_os_environ(pipenv: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://from-os-environ/simple")
    write(pipenv, {"elsewhere/pip/pip.conf": "[global]\nfind-links = /elsewhere\n"})
    config = read_pip_config({"PIP_CONFIG_FILE": os.devnull, "PIP_EXTRA_INDEX_URL": "http://given/"})
    assert config.index_url is None and config.extra_index_urls == ("http://given/",)
    config = read_pip_config({"HOME": str(pipenv / "nohome"), "XDG_CONFIG_HOME": str(pipenv / "elsewhere"),
                              "XDG_CONFIG_DIRS": str(pipenv / "none")})
    assert config.find_links == ("/elsewhere",) and config.index_url is None


def test_default_index_url_is_pips_builtin_default(pipenv: Path, monkeypatch: pytest.MonkeyPatch):
    from pip._internal.models.index import PyPI

    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    config = read_pip_config()
    assert config == PipIndexConfig(origins={})
    assert default_index_url(config) == PyPI.simple_url
    assert default_index_url(PipIndexConfig(index_url="http://mine/simple")) == "http://mine/simple"


def test_venvsmith_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert venvsmith_home({"VENVSMITH_HOME": str(tmp_path / "h")}) == tmp_path / "h"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert venvsmith_home({"VENVSMITH_HOME": "~/state"}) == tmp_path / "state"
    monkeypatch.setenv("VENVSMITH_HOME", str(tmp_path / "from-env"))
    assert venvsmith_home() == tmp_path / "from-env"
    monkeypatch.delenv("VENVSMITH_HOME")
    assert venvsmith_home() == Path(user_cache_dir("venvsmith"))
    assert venvsmith_home({"VENVSMITH_HOME": ""}) == Path(user_cache_dir("venvsmith"))
