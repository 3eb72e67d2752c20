"""Bounds a server puts on the strings of a request, beyond what the standards say.

PEP 508 names and PEP 440 versions have no length limit, but a server must have one: a 300-character name
becomes a file name too long for the file system, and ``int()`` of a release segment of 4,300 digits or more
raises. Each check raises :class:`~venvsmith.core.errors.InvalidInput` naming the value (shortened).
"""

from __future__ import annotations

from packaging.requirements import Requirement

from .errors import InvalidInput

__all__ = ["MAX_BUILD_PINS", "MAX_FILENAME_LENGTH", "MAX_NAME_LENGTH", "MAX_REQUIREMENTS", "MAX_REQUIREMENT_LENGTH",
           "MAX_VERSION_LENGTH", "check_count", "check_filename", "check_name",
           "check_requirement", "check_requirement_text", "check_version"]

#: Longest project name accepted (the longest on public indexes is well under 100 characters).
MAX_NAME_LENGTH = 200
#: Longest version string (in a specifier or a pin) accepted.
MAX_VERSION_LENGTH = 200
#: Longest file name accepted (what most file systems take).
MAX_FILENAME_LENGTH = 255
#: Longest requirement string accepted (a direct URL with its hash fits many times over).
MAX_REQUIREMENT_LENGTH = 8192
#: Most requirements (and, separately, constraints) one request may carry.
MAX_REQUIREMENTS = 1000
#: Most pins one Build stream may carry (a resolution of a large monorepo has a few hundred).
MAX_BUILD_PINS = 5000


def check_count(count: int, limit: int, field: str) -> None:
    """At most ``limit`` items in the repeated ``field``: INVALID_ARGUMENT naming it otherwise."""
    if count > limit:
        raise InvalidInput(f"{count} items", f"{field}: more than {limit} items in one request", field=field)


def check_requirement_text(text: str, what: str = "requirement") -> None:
    if len(text) > MAX_REQUIREMENT_LENGTH:
        raise InvalidInput(text, f"{what} longer than {MAX_REQUIREMENT_LENGTH} characters")


def check_name(name: str, what: str = "project name") -> None:
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(name, f"{what} longer than {MAX_NAME_LENGTH} characters")


def check_filename(filename: str, what: str = "file name") -> None:
    if len(filename) > MAX_FILENAME_LENGTH:
        raise InvalidInput(filename, f"{what} longer than {MAX_FILENAME_LENGTH} characters")


def check_version(version: str, what: str = "version") -> None:
    if len(version) > MAX_VERSION_LENGTH:
        raise InvalidInput(version, f"{what} longer than {MAX_VERSION_LENGTH} characters")


def check_requirement(req: Requirement, text: str, what: str = "requirement") -> None:
    """The name and every specifier's version of a parsed requirement within bounds (``text`` is echoed)."""
    if len(req.name) > MAX_NAME_LENGTH:
        raise InvalidInput(text, f"{what}: project name longer than {MAX_NAME_LENGTH} characters")
    for spec in req.specifier:
        if len(spec.version) > MAX_VERSION_LENGTH:
            raise InvalidInput(text, f"{what}: version longer than {MAX_VERSION_LENGTH} characters")
