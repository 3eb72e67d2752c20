"""Settings shared by the CLI and the servers: where state lives, and the index pip is configured for.

The default index is never written into this code: it comes from pip's own configuration (its config
files and ``PIP_*`` environment variables, read the way pip reads them), and where none names one, from
pip's built-in default ``pip._internal.models.index.PyPI.simple_url``, read at run time.
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from platformdirs import user_cache_dir


def venvsmith_home(environ: Mapping[str, str] = os.environ) -> Path:
    """All state (caches, store) lives here: ``$VENVSMITH_HOME`` or the user cache directory."""
    home = environ.get("VENVSMITH_HOME")
    return Path(home).expanduser() if home else Path(user_cache_dir("venvsmith"))


@dataclass(frozen=True)
class PipIndexConfig:
    """The index settings pip would use: default index, extra indexes, find-links, no-index, CA bundle."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    cert: str | None = None
    #: Where each value came from, for ``venvsmith config`` ("global.index-url", ":env:.find-links", ...).
    origins: dict[str, str] = field(default_factory=dict)


def _config_files(environ: Mapping[str, str]) -> list[Path]:
    """pip's configuration files in load order (later overrides earlier): global, user, site."""
    if environ.get("PIP_CONFIG_FILE") == os.devnull:
        return []
    files: list[Path] = []
    xdg_dirs = environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)
    files += [Path(d) / "pip" / "pip.conf" for d in reversed([d for d in xdg_dirs if d])]
    files.append(Path("/etc/pip.conf"))
    home = Path(environ.get("HOME", "~")).expanduser()
    files.append(home / ".pip" / "pip.conf")
    xdg_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    files.append(xdg_home / "pip" / "pip.conf")
    files.append(Path(sys.prefix) / "pip.conf")
    if environ.get("PIP_CONFIG_FILE"):
        files.append(Path(environ["PIP_CONFIG_FILE"]))
    return files


def read_pip_config(environ: Mapping[str, str] = os.environ) -> PipIndexConfig:
    """Read pip's index configuration: files (``[global]`` then ``[install]``), then ``PIP_*`` variables."""
    values: dict[str, str] = {}
    origins: dict[str, str] = {}
    for path in _config_files(environ):
        if not path.is_file():
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                for key, value in parser.items(section):
                    key = key.replace("_", "-")
                    values[key] = value
                    origins[key] = f"{section}.{key} ({path})"
    for var, value in environ.items():
        if var.startswith("PIP_") and var != "PIP_CONFIG_FILE":
            key = var[4:].lower().replace("_", "-")
            values[key] = value
            origins[key] = f":env:.{key} ({var})"

    def listed(key: str) -> tuple[str, ...]:
        return tuple(values.get(key, "").split())

    no_index = values.get("no-index", "").strip().lower() in ("1", "true", "yes", "on")
    return PipIndexConfig(
        index_url=values.get("index-url") or None,
        extra_index_urls=listed("extra-index-url"),
        find_links=listed("find-links"),
        no_index=no_index,
        cert=values.get("cert") or None,
        origins=origins,
    )


def default_index_url(config: PipIndexConfig) -> str:
    """The configured index URL, else pip's built-in default read from pip at run time."""
    if config.index_url:
        return config.index_url
    from pip._internal.models.index import PyPI  # only pip's constant, read at run time

    return PyPI.simple_url
