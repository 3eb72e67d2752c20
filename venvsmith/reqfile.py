"""Requirements files (pip's format) and pyproject.toml dependencies, read on the client side.

The server takes plain PEP 508 strings; this module turns the files users have into those strings plus
the options pip allows inside a requirements file.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")


class RequirementsFileError(ValueError):
    """A requirements file that cannot be read; ``path`` and ``line`` say where."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line


@dataclass
class ParsedRequirements:
    """Requirements, constraints and the options found in requirements files."""

    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    no_index: bool = False
    pre: bool = False
    no_binary: list[str] = field(default_factory=list)
    only_binary: list[str] = field(default_factory=list)


def _logical_lines(text: str):
    """Yield (line number, line) with continuations joined and comments dropped, as pip does."""
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s+)#.*$", "", raw)
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1]
            continue
        buffer += line
        if buffer.strip():
            yield start, _ENV_VAR.sub(lambda m: os.environ.get(m.group(1), m.group(0)), buffer.strip())
        buffer = ""
    if buffer.strip():
        yield start, buffer.strip()


def read_requirements(path: str | Path, into: ParsedRequirements | None = None, *, constraint=False,
                      _seen: frozenset[Path] = frozenset()) -> ParsedRequirements:
    """Read a requirements (or constraints) file, following ``-r`` / ``-c`` includes."""
    out = into if into is not None else ParsedRequirements()
    path = Path(path)
    if path.name == "pyproject.toml":
        return read_pyproject(path, out)
    resolved = path.resolve()
    if resolved in _seen:
        raise RequirementsFileError(str(path), 0, "includes itself")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RequirementsFileError(str(path), 0, f"cannot read: {exc.strerror}") from None
    for number, line in _logical_lines(text):
        if not line.startswith("-"):
            (out.constraints if constraint else out.requirements).append(line.split(" --hash", 1)[0].strip())
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise RequirementsFileError(str(path), number, str(exc)) from None
        option, _, inline = words[0].partition("=")
        value = inline or (words[1] if len(words) > 1 else "")
        here = path.parent
        if option in ("-r", "--requirement", "-c", "--constraint"):
            nested = here / value
            is_constraint = constraint or option in ("-c", "--constraint")
            read_requirements(nested, out, constraint=is_constraint, _seen=_seen | {resolved})
        elif option in ("-i", "--index-url"):
            out.index_url = value
        elif option == "--extra-index-url":
            out.extra_index_urls.append(value)
        elif option in ("-f", "--find-links"):
            out.find_links.append(value if "://" in value else str((here / value).resolve()))
        elif option == "--no-index":
            out.no_index = True
        elif option == "--pre":
            out.pre = True
        elif option == "--no-binary":
            out.no_binary.append(value)
        elif option == "--only-binary":
            out.only_binary.append(value)
        elif option in ("--hash", "--require-hashes", "--trusted-host", "--prefer-binary"):
            continue
        elif option in ("-e", "--editable"):
            raise RequirementsFileError(str(path), number, "editable requirements cannot be resolved remotely")
        else:
            raise RequirementsFileError(str(path), number, f"unsupported option {option}")
    return out


def read_pyproject(path: Path, out: ParsedRequirements) -> ParsedRequirements:
    """``[project].dependencies`` of a pyproject.toml (PEP 621)."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RequirementsFileError(str(path), 0, f"cannot read: {exc}") from None
    deps = doc.get("project", {}).get("dependencies")
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise RequirementsFileError(str(path), 0, "[project].dependencies must be a list of strings")
    out.requirements.extend(deps)
    return out
