"""Requirements files (pip's format) and pyproject.toml dependencies, read on the client side.

The server takes plain PEP 508 strings; this module turns the files users have into those strings plus
the options pip allows inside a requirements file. Lines are read exactly as pip reads them: continuation
lines are joined first (a full-line comment never continues), then comments are dropped, then ``${VAR}``
is replaced by the (non-empty) environment variable; a requirement line ends at its first word starting
with ``-`` (its per-requirement options, of which ``--hash`` is accepted and dropped).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
_COMMENT = re.compile(r"(^|\s+)#.*$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

#: Options of a line of their own: canonical spelling -> does it take a value.
_LINE_OPTIONS = {
    "--requirement": True, "--constraint": True, "--editable": True, "--index-url": True,
    "--extra-index-url": True, "--find-links": True, "--no-binary": True, "--only-binary": True,
    "--trusted-host": True, "--use-feature": True,
    "--no-index": False, "--pre": False, "--prefer-binary": False, "--require-hashes": False,
}
_SHORT = {"-r": "--requirement", "-c": "--constraint", "-e": "--editable", "-i": "--index-url",
          "-f": "--find-links"}
#: Options that have no effect on the answer and are accepted silently.
_IGNORED = {"--trusted-host", "--prefer-binary", "--require-hashes", "--use-feature"}


class RequirementsFileError(ValueError):
    """Bad input from the command line or a requirements file; ``path`` and ``line`` (0: none) say where."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.path = path
        self.line = line


class FormatControl:
    """pip's ``--no-binary`` / ``--only-binary`` bookkeeping, applied in the order options are met.

    Values are comma-separated names, ``:all:`` (clears both sets, then applies to everything) or ``:none:``
    (clears this set); naming a project in one set removes it from the other.
    """

    def __init__(self) -> None:
        self.no_binary: dict[str, str] = {}  # canonical name -> name as given
        self.only_binary: dict[str, str] = {}

    def add(self, kind: str, value: str) -> None:
        target, other = (self.no_binary, self.only_binary) if kind == "no-binary" else (
            self.only_binary, self.no_binary)
        for raw in value.split(","):
            name = raw.strip()
            if not name:
                continue
            if name == ":all:":
                target.clear()
                other.clear()
                target[":all:"] = ":all:"
            elif name == ":none:":
                target.clear()
            else:
                from packaging.utils import canonicalize_name  # only for files with per-package options

                key = canonicalize_name(name)
                other.pop(key, None)
                target[key] = name


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
    format_control: FormatControl = field(default_factory=FormatControl)

    @property
    def no_binary(self) -> list[str]:
        return list(self.format_control.no_binary.values())

    @property
    def only_binary(self) -> list[str]:
        return list(self.format_control.only_binary.values())


def _join_lines(text: str) -> Iterator[tuple[int, str]]:
    """pip's ``join_lines``: a line ending in ``\\`` continues on the next, unless it is a comment line."""
    start, parts = 0, list[str]()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.endswith("\\") or _COMMENT.match(line):
            if _COMMENT.match(line):
                line = " " + line  # a comment line ends a continuation and is dropped below
            if parts:
                parts.append(line)
                yield start, "".join(parts)
                parts = []
            else:
                yield number, line
        else:
            if not parts:
                start = number
            parts.append(line.strip("\\"))
    if parts:
        yield start, "".join(parts)


def _expand(line: str) -> str:
    """``${NAME}`` -> the environment variable's value; unset or empty variables stay as written (as in pip)."""
    return _ENV_VAR.sub(lambda m: os.environ.get(m.group(1)) or m.group(0), line)


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (first line number, line) with continuations joined, comments dropped and variables expanded."""
    for number, line in _join_lines(text):
        line = _COMMENT.sub("", line).strip()
        if line:
            yield number, _expand(line)


def _split_args_options(line: str) -> tuple[str, str]:
    """pip's ``break_args_options``: the requirement is the words before the first one starting with ``-``."""
    words = line.split(" ")
    for i, word in enumerate(words):
        if word.startswith("-"):
            return " ".join(words[:i]).strip(), " ".join(words[i:])
    return line.strip(), ""


#: Options a requirement line may carry after the requirement; only ``--hash`` is accepted (and dropped).
_REQUIREMENT_OPTIONS = {"--hash": True, "--config-settings": True, "--global-option": True}


def _options(text: str, where: tuple[str, int], known: dict[str, bool]) -> Iterator[tuple[str, str]]:
    """Parse option words as optparse would: ``--opt=v``, ``--opt v``, ``-xv``, ``-x v``, flags."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise RequirementsFileError(*where, f"{exc} in {text!r}") from None
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word.startswith("--"):
            option, eq, value = word.partition("=")
        elif word.startswith("-") and len(word) > 1:
            option, value = _SHORT.get(word[:2], word[:2]), word[2:]
            eq = "=" if value else ""
        else:
            raise RequirementsFileError(*where, f"unexpected argument {word!r}")
        if option not in known:
            spelled = word.partition("=")[0] if word.startswith("--") else word[:2]
            raise RequirementsFileError(*where, f"unsupported option {spelled}")
        if known[option] and not eq:
            if i >= len(words):
                raise RequirementsFileError(*where, f"{option} requires a value")
            value = words[i]
            i += 1
        elif not known[option] and eq:
            raise RequirementsFileError(*where, f"{option} takes no value")
        yield option, value


def read_requirements(path: str | Path, into: ParsedRequirements | None = None, *, constraint: bool = False,
                      _chain: tuple[Path, ...] = ()) -> ParsedRequirements:
    """Read a requirements (or constraints) file, following ``-r`` / ``-c`` includes.

    As in pip, a ``-r`` include holds requirements and a ``-c`` include constraints, whatever the including
    file is; relative include paths are relative to the including file.
    """
    out = into if into is not None else ParsedRequirements()
    path = Path(path)
    if path.name == "pyproject.toml":
        return read_pyproject(path, out, constraint=constraint)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RequirementsFileError(str(path), 0, f"cannot read: {exc.strerror or exc}") from None
    chain = (*_chain, path.resolve())
    for number, line in logical_lines(text):
        where = (str(path), number)
        if not line.startswith("-"):
            requirement, options = _split_args_options(line)
            for option, _value in _options(options, where, _REQUIREMENT_OPTIONS):
                if option != "--hash":
                    raise RequirementsFileError(*where, f"unsupported option {option} for a requirement")
            (out.constraints if constraint else out.requirements).append(requirement)
            continue
        for option, value in _options(line, where, _LINE_OPTIONS):
            if option in ("--requirement", "--constraint"):
                nested = path.parent / value
                if nested.resolve() in chain:
                    loop = " -> ".join(p.name for p in (*chain, nested))
                    raise RequirementsFileError(*where, f"{value} includes itself ({loop})")
                if not nested.is_file():
                    raise RequirementsFileError(*where, f"cannot read {option} file {value}: no such file")
                read_requirements(nested, out, constraint=option == "--constraint", _chain=chain)
            elif option == "--index-url":
                out.index_url = value
            elif option == "--extra-index-url":
                out.extra_index_urls.append(value)
            elif option == "--find-links":
                local = path.parent / value
                out.find_links.append(str(local.resolve()) if not _URL.match(value) and local.exists() else value)
            elif option == "--no-index":
                out.no_index = True
            elif option == "--pre":
                out.pre = True
            elif option in ("--no-binary", "--only-binary"):
                out.format_control.add(option[2:], value)
            elif option == "--editable":
                raise RequirementsFileError(*where, f"editable requirement {value!r} cannot be resolved remotely")
            else:
                assert option in _IGNORED, option
    return out


def read_pyproject(path: Path, out: ParsedRequirements, *, constraint: bool = False) -> ParsedRequirements:
    """``[project].dependencies`` of a pyproject.toml (PEP 621)."""
    import tomllib  # only pyproject inputs need it

    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RequirementsFileError(str(path), 0, f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RequirementsFileError(str(path), 0, f"invalid TOML: {exc}") from None
    project = doc.get("project")
    if not isinstance(project, dict):
        raise RequirementsFileError(str(path), 0, "no [project] table")
    if "dependencies" in project.get("dynamic", []):
        raise RequirementsFileError(str(path), 0, "[project].dependencies is dynamic; it cannot be read statically")
    deps = project.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise RequirementsFileError(str(path), 0, "[project].dependencies must be a list of strings")
    (out.constraints if constraint else out.requirements).extend(deps)
    return out
