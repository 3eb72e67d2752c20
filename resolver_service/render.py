"""Renderings of a pinned set: requirements.txt with hashes, and a PEP 751 pylock.toml."""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence

from packaging.markers import Marker

from venvsmith.core.distfile import DistFile
from venvsmith.core.pin import Pin, requirements_txt  # noqa: F401 - re-exported
from venvsmith.core.target import TargetEnvironment

TOOL = "venvsmith"


def pylock_toml(pins: Sequence[Pin], target: TargetEnvironment) -> str:
    """A PEP 751 lock file for this target environment's Python minor version and platform."""
    packages = []
    for pin in sorted(pins, key=lambda p: p.name):
        file = pin.file
        entry: dict = {"name": pin.name, "version": str(pin.version)}
        if file.index and file.origin == "index":
            entry["index"] = file.index
        if file.requires_python:
            entry["requires-python"] = file.requires_python
        if pin.dependencies:
            entry["dependencies"] = [{"name": d} for d in pin.dependencies]
        if file.is_wheel:
            entry["wheels"] = [_file_entry(file)]
            if pin.sdist is not None:
                entry["sdist"] = _file_entry(pin.sdist)
        else:
            entry["sdist"] = _file_entry(file)
        if pin.attestation_identities:
            entry["attestation-identities"] = [dict(identity) for identity in pin.attestation_identities]
        packages.append(entry)
    doc = {
        "lock-version": "1.0",
        "environments": [_environment_marker(target)],
        "requires-python": _requires_python(target),
        "created-by": TOOL,
        "packages": packages,
    }
    return dumps_toml(doc)


def _file_entry(file: DistFile) -> dict:
    """A pylock ``wheels`` / ``sdist`` entry: name, url, upload-time and size when known, hashes."""
    dist: dict = {"name": file.filename, "url": file.url}
    if file.upload_time is not None:
        dist["upload-time"] = file.upload_time
    if file.size:
        dist["size"] = file.size
    dist["hashes"] = {"sha256": file.sha256} if file.sha256 else {}
    return dist


def _requires_python(target: TargetEnvironment) -> str:
    """Every patch release of the target's minor version: a lock made for "3.11" (checked as 3.11.0, the
    oldest, like uv) or for a 3.11.7 interpreter installs on any 3.11.x; per-package requires-python stays
    in each package's entry."""
    version = target.python_version
    return f"=={version.major}.{version.minor}.*"


# ------------------------------------------------------------------------------------------------ TOML
# A small writer for the shapes above (tables, arrays of tables, inline tables, strings, integers, arrays of
# them): a general TOML library took ~40% of an in-memory resolution rendering a 100-pin lock file.

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _escape(match: re.Match) -> str:
    char = match.group()
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _string(value: str) -> str:
    return f'"{_NEEDS_ESCAPE.sub(_escape, value)}"'


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: object) -> str:
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime.date):  # datetimes too: RFC 3339, with an offset when aware
        return value.isoformat()
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def dumps_toml(doc: dict) -> str:
    """``doc`` as TOML: top-level values as ``key = value``, then each top-level list of tables as
    ``[[key]]`` sections whose values are written inline (one line each)."""
    lines: list[str] = []
    sections: list[tuple[str, list]] = []
    for key, value in doc.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            sections.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, items in sections:
        for item in items:
            lines += ["", f"[[{_key(key)}]]"]
            lines += [f"{_key(k)} = {_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


#: What the lock depends on: the minor version (wheel tags and markers of the pins were chosen for it; the patch
#: release is left open, see :func:`_requires_python`), and the platform the wheels' tags and the markers were
#: evaluated for.
_ENVIRONMENT_KEYS = ("python_version", "sys_platform", "platform_machine", "implementation_name")


def _environment_marker(target: TargetEnvironment) -> str:
    """The PEP 508 marker of the environments the lock is for, built and checked by ``packaging``."""
    clauses = [f"{k} == {_marker_literal(target.markers[k])}" for k in _ENVIRONMENT_KEYS if target.markers.get(k)]
    return str(Marker(" and ".join(clauses)))


def _marker_literal(value: str) -> str:
    """A PEP 508 string literal (no escapes exist: the other quote is used when the value holds one)."""
    return f'"{value}"' if "'" in value else f"'{value}'"
