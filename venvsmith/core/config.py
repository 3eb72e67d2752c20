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


def venvsmith_home(environ: Mapping[str, str] = os.environ) -> Path:
    """All state (caches, store) lives here: ``$VENVSMITH_HOME`` or the user cache directory."""
    home = environ.get("VENVSMITH_HOME")
    if home:
        return Path(home).expanduser()
    from platformdirs import user_cache_dir  # only when no home is given

    return Path(user_cache_dir("venvsmith"))


@dataclass(frozen=True)
class PipIndexConfig:
    """The index settings pip would use: default index, extra indexes, find-links, no-index, CA bundle and
    client certificate."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    cert: str | None = None
    #: A PEM file with the client certificate and its key (pip's ``client-cert``).
    client_cert: str | None = None
    #: Constraints files pip applies to every install (``constraint``, ``PIP_CONSTRAINT``), as given.
    constraints: tuple[str, ...] = ()
    #: Settings read but not applied (``(key, origin, why)``), for ``venvsmith config`` and ``-v``.
    ignored: tuple[tuple[str, str, str], ...] = ()
    #: Where each value came from, for ``venvsmith config`` ("global.index-url", ":env:.find-links", ...).
    origins: dict[str, str] = field(default_factory=dict)


CONFIG_BASENAME = "pip.ini" if sys.platform == "win32" else "pip.conf"
#: PIP_* variables pip never reads as options.
_ENV_NAMES_IGNORED = ("version", "help")
#: pip's ``strtobool`` spellings of true.
_TRUE = ("y", "yes", "t", "true", "on", "1")
#: pip's section override order for ``pip install``: ``[global]``, then ``[install]``, then ``PIP_*``.
_SECTIONS = ("global", "install", ":env:")
#: The pip settings venvsmith applies (the index options, TLS trust and constraints); any other is ignored.
APPLIED = frozenset({"index-url", "extra-index-url", "find-links", "no-index", "cert", "client-cert",
                     "constraint"})
#: Why some often-set pip settings are ignored (others: not an option of a resolution).
_IGNORED_WHY = {
    "require-virtualenv": "venvsmith installs into no environment of yours",
    "user": "venvsmith installs into no environment of yours",
    "target": "venvsmith installs into no environment of yours",
    "prefix": "venvsmith installs into no environment of yours",
    "break-system-packages": "venvsmith installs into no environment of yours",
    "trusted-host": "venvsmith always verifies TLS (set cert to trust a CA)",
    "pre": "not read from pip's configuration: pass --pre",
    "no-binary": "not read from pip's configuration: pass --no-binary",
    "only-binary": "not read from pip's configuration: pass --only-binary",
    "requirement": "not read from pip's configuration: pass -r",
}
_IGNORED_DEFAULT = "not a setting venvsmith applies"


def _normalize_name(name: str) -> str:
    """pip's key normalisation: lower case, ``_`` -> ``-``, a leading ``--`` dropped."""
    name = name.lower().replace("_", "-")
    return name[2:] if name.startswith("--") else name


def _home(environ: Mapping[str, str]) -> str:
    return environ.get("HOME") or os.path.expanduser("~")


def _expanduser(path: str, home: str) -> str:
    return home + path[1:] if path == "~" or path.startswith("~/") else path


def _global_and_user_files(environ: Mapping[str, str]) -> tuple[list[Path], list[Path]]:
    """pip's global (site-wide) and user configuration files, in load order."""
    if sys.platform in ("darwin", "win32"):  # pip's own platform rules; they read os.environ
        from pip._internal.configuration import get_configuration_files, kinds

        files = get_configuration_files()
        return [Path(f) for f in files[kinds.GLOBAL]], [Path(f) for f in files[kinds.USER]]
    # Unix: $XDG_CONFIG_DIRS (default /etc/xdg) in the order given, each with pip/pip.conf, then /etc.
    # Later files override earlier ones, so /etc/pip.conf wins over the XDG directories, as in pip.
    xdg_dirs = environ.get("XDG_CONFIG_DIRS", "")
    if not xdg_dirs.strip():
        xdg_dirs = "/etc/xdg"
    home = _home(environ)
    global_files = [Path(_expanduser(d, home), "pip", CONFIG_BASENAME) for d in xdg_dirs.split(os.pathsep)]
    global_files.append(Path("/etc", CONFIG_BASENAME))
    xdg_home = environ.get("XDG_CONFIG_HOME", "")
    if not xdg_home.strip():
        xdg_home = os.path.join(home, ".config")
    user_files = [Path(home, ".pip", CONFIG_BASENAME), Path(xdg_home, "pip", CONFIG_BASENAME)]
    return global_files, user_files


def _config_files(environ: Mapping[str, str]) -> list[Path]:
    """pip's configuration files in override order (later overrides earlier): global, user, site, then
    ``$PIP_CONFIG_FILE``. ``PIP_CONFIG_FILE=os.devnull`` loads no file at all, and an existing
    ``$PIP_CONFIG_FILE`` replaces the user files, exactly as pip does."""
    config_file = environ.get("PIP_CONFIG_FILE")
    if config_file == os.devnull:
        return []
    global_files, user_files = _global_and_user_files(environ)
    files = list(global_files)
    if not (config_file and os.path.exists(config_file)):
        files += user_files
    files.append(Path(sys.prefix, CONFIG_BASENAME))
    if config_file:
        files.append(Path(config_file))
    return files


def read_pip_config(environ: Mapping[str, str] = os.environ) -> PipIndexConfig:
    """Read pip's index configuration the way ``pip install`` does.

    Every file's ``section.key`` pairs are merged in file override order, and ``PIP_*`` variables become
    ``:env:.key``; then ``[global]`` values apply, overridden by ``[install]`` values (from *any* file),
    overridden by ``PIP_*`` variables. Empty values are ignored, after merging (so an empty value in a later
    file hides an earlier one), as pip ignores them.
    """
    merged: dict[str, tuple[str, str]] = {}
    for path in _config_files(environ):
        if not path.is_file():
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            continue
        for section in parser.sections():
            for name, value in parser.items(section):
                key = _normalize_name(name)
                merged[f"{section}.{key}"] = (value, f"{section}.{key} ({path})")
    for var, value in environ.items():
        if var.startswith("PIP_") and var[4:].lower() not in _ENV_NAMES_IGNORED:
            key = _normalize_name(var[4:])
            merged[f":env:.{key}"] = (value, f":env:.{key} ({var})")

    values: dict[str, str] = {}
    origins: dict[str, str] = {}
    for wanted in _SECTIONS:
        for section_key, (value, origin) in merged.items():
            section, _, key = section_key.partition(".")
            if section == wanted and value:
                values[key] = value
                origins[key] = origin
    origins.pop("config-file", None)
    ignored = tuple((key, origins[key], _IGNORED_WHY.get(key, _IGNORED_DEFAULT))
                    for key in sorted(values) if key not in APPLIED and key in origins)

    def listed(key: str) -> tuple[str, ...]:
        return tuple(values.get(key, "").split())

    return PipIndexConfig(
        index_url=values.get("index-url", "").strip() or None,
        extra_index_urls=listed("extra-index-url"),
        find_links=listed("find-links"),
        no_index=values.get("no-index", "").strip().lower() in _TRUE,
        cert=values.get("cert", "").strip() or None,
        client_cert=values.get("client-cert", "").strip() or None,
        constraints=listed("constraint"),
        ignored=ignored,
        origins=origins,
    )


def isolated(environ: Mapping[str, str] = os.environ) -> bool:
    """``VENVSMITH_ISOLATED`` is true: pip's configuration is ignored (as ``--isolated`` does)."""
    return environ.get("VENVSMITH_ISOLATED", "").strip().lower() in _TRUE


def effective_pip_config(environ: Mapping[str, str] = os.environ) -> PipIndexConfig:
    """:func:`read_pip_config`, or nothing at all when :func:`isolated` (no files, no ``PIP_*`` variables)."""
    return PipIndexConfig() if isolated(environ) else read_pip_config(environ)


def default_index_url(config: PipIndexConfig) -> str:
    """The configured index URL, else pip's built-in default read from pip at run time."""
    if config.index_url:
        return config.index_url
    from pip._internal.models.index import PyPI  # only pip's constant, read at run time

    return PyPI.simple_url
