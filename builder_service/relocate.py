"""Make a venv relocatable: launchers and activate scripts find the venv relative to their own location.

As uv's ``--relocatable`` does:

* console scripts start with a ``/bin/sh`` + Python polyglot header that execs the ``python`` next to the
  script (after resolving symlinks to the script), so the venv can be unpacked or moved anywhere;
* ``bin/activate`` (bash, zsh) and ``bin/activate.fish`` are written from our own templates that derive
  ``VIRTUAL_ENV`` and the prompt from the script's location instead of embedding the build path;
  ``activate.csh`` is removed: csh cannot find the path of a sourced file, so it cannot be relocatable
  (uv leaves it non-relocatable instead; a wrong path is worse than none). ``Activate.ps1`` already
  computes the venv from its own location and is kept as the interpreter wrote it;
* ``pyvenv.cfg`` loses ``command`` (it names the build directory) and gains ``relocatable = true``. It
  keeps ``home``: the base interpreter's directory, and ``bin/python`` stays a symlink to that
  interpreter, so the machine that unpacks the venv needs the same interpreter at the same path (the
  target environment a build is keyed on names it).

:func:`check_relocatable` proves the result: no file or symlink mentions the build directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from builder_service.venv_layout import VenvLayout

from .errors import NotRelocatable

__all__ = [
    "SCRIPT_HEADER",
    "check_relocatable",
    "find_references",
    "make_relocatable",
    "relocatable_script",
]

#: First lines of every launcher: sh runs the ``exec`` line, Python sees a string literal.
SCRIPT_HEADER = (
    b"#!/bin/sh\n"
    b"'''exec' \"$(dirname -- \"$(realpath -- \"$0\")\")\"/python \"$0\" \"$@\"\n"
    b"' '''\n"
)

_BIN = "__VENVSMITH_BIN__"

_ACTIVATE_SH = r"""# This file must be used with "source bin/activate" *from bash or zsh*; you cannot run it directly.
# Written by venvsmith: the venv is found from this file's location, so the venv can be moved.

if [ "${BASH_SOURCE-}" = "$0" ]; then
    echo "You must source this script: \$ source $0" >&2
    exit 33
fi

deactivate () {
    # reset old environment variables
    if [ -n "${_OLD_VIRTUAL_PATH:-}" ] ; then
        PATH="${_OLD_VIRTUAL_PATH:-}"
        export PATH
        unset _OLD_VIRTUAL_PATH
    fi
    if [ -n "${_OLD_VIRTUAL_PYTHONHOME:-}" ] ; then
        PYTHONHOME="${_OLD_VIRTUAL_PYTHONHOME:-}"
        export PYTHONHOME
        unset _OLD_VIRTUAL_PYTHONHOME
    fi

    # forget remembered command locations, so the PATH change is respected
    hash -r 2> /dev/null

    if [ -n "${_OLD_VIRTUAL_PS1:-}" ] ; then
        PS1="${_OLD_VIRTUAL_PS1:-}"
        export PS1
        unset _OLD_VIRTUAL_PS1
    fi

    unset VIRTUAL_ENV
    unset VIRTUAL_ENV_PROMPT
    if [ ! "${1:-}" = "nondestructive" ] ; then
        # self destruct
        unset -f deactivate
    fi
}

# unset irrelevant variables
deactivate nondestructive

# where is this file? (shells other than bash and zsh cannot tell a sourced file its path)
if [ -n "${BASH_VERSION:-}" ] ; then
    _VENVSMITH_ACTIVATE="${BASH_SOURCE[0]}"
elif [ -n "${ZSH_VERSION:-}" ] ; then
    _VENVSMITH_ACTIVATE="${(%):-%x}"
else
    echo "bin/activate: source this file from bash or zsh" >&2
    return 1
fi
VIRTUAL_ENV=$(CDPATH= cd -- "$(dirname -- "$_VENVSMITH_ACTIVATE")/.." && pwd)
export VIRTUAL_ENV
unset _VENVSMITH_ACTIVATE

_OLD_VIRTUAL_PATH="$PATH"
PATH="$VIRTUAL_ENV/__VENVSMITH_BIN__:$PATH"
export PATH

# unset PYTHONHOME if set
if [ -n "${PYTHONHOME:-}" ] ; then
    _OLD_VIRTUAL_PYTHONHOME="${PYTHONHOME:-}"
    unset PYTHONHOME
fi

VIRTUAL_ENV_PROMPT=$(basename -- "$VIRTUAL_ENV")
export VIRTUAL_ENV_PROMPT

if [ -z "${VIRTUAL_ENV_DISABLE_PROMPT:-}" ] ; then
    _OLD_VIRTUAL_PS1="${PS1:-}"
    PS1="(${VIRTUAL_ENV_PROMPT}) ${PS1:-}"
    export PS1
fi

# forget remembered command locations, so the PATH change is respected
hash -r 2> /dev/null
"""

_ACTIVATE_FISH = r"""# This file must be used with "source <venv>/bin/activate.fish" *from fish*; it cannot be run.
# Written by venvsmith: the venv is found from this file's location, so the venv can be moved.

function deactivate -d "Exit virtual environment and return to normal shell environment"
    # reset old environment variables
    if test -n "$_OLD_VIRTUAL_PATH"
        set -gx PATH $_OLD_VIRTUAL_PATH
        set -e _OLD_VIRTUAL_PATH
    end
    if test -n "$_OLD_VIRTUAL_PYTHONHOME"
        set -gx PYTHONHOME $_OLD_VIRTUAL_PYTHONHOME
        set -e _OLD_VIRTUAL_PYTHONHOME
    end

    if test -n "$_OLD_FISH_PROMPT_OVERRIDE"
        set -e _OLD_FISH_PROMPT_OVERRIDE
        if functions -q _old_fish_prompt
            functions -e fish_prompt
            functions -c _old_fish_prompt fish_prompt
            functions -e _old_fish_prompt
        end
    end

    set -e VIRTUAL_ENV
    set -e VIRTUAL_ENV_PROMPT
    if test "$argv[1]" != "nondestructive"
        # self destruct
        functions -e deactivate
    end
end

# unset irrelevant variables
deactivate nondestructive

set -gx VIRTUAL_ENV (dirname (dirname (builtin realpath (status filename))))

set -gx _OLD_VIRTUAL_PATH $PATH
set -gx PATH "$VIRTUAL_ENV/__VENVSMITH_BIN__" $PATH

# unset PYTHONHOME if set
if set -q PYTHONHOME
    set -gx _OLD_VIRTUAL_PYTHONHOME $PYTHONHOME
    set -e PYTHONHOME
end

set -gx VIRTUAL_ENV_PROMPT (basename "$VIRTUAL_ENV")

if test -z "$VIRTUAL_ENV_DISABLE_PROMPT"
    # fish uses a function instead of an environment variable to generate the prompt
    functions -c fish_prompt _old_fish_prompt
    function fish_prompt
        set -l old_status $status
        printf "%s(%s)%s " (set_color 4B8BBE) $VIRTUAL_ENV_PROMPT (set_color normal)
        # restore the status of the previous command, then print the old prompt
        echo "exit $old_status" | .
        _old_fish_prompt
    end
    set -gx _OLD_FISH_PROMPT_OVERRIDE "$VIRTUAL_ENV"
end
"""

#: ``pyvenv.cfg`` keys dropped because they record the build (``command`` names the build directory).
_DROPPED_KEYS = frozenset({"command"})


def relocatable_script(data: bytes) -> bytes:
    """A launcher with a ``#!python`` (or ``#!pythonw``) first line, rewritten to start with :data:`SCRIPT_HEADER`.

    Anything else (a shell script shipped in ``.data/scripts``) is returned unchanged, as installer does.
    """
    if not data.startswith(b"#!python"):
        return data
    _, _, rest = data.partition(b"\n")
    return SCRIPT_HEADER + rest


def _rewrite_pyvenv_cfg(path: Path) -> None:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        key = line.partition("=")[0].strip().lower()
        if key not in _DROPPED_KEYS and key != "relocatable":
            lines.append(line)
    lines.append("relocatable = true")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_relocatable(layout: VenvLayout) -> None:
    """Rewrite the activate scripts and ``pyvenv.cfg`` of the venv at ``layout`` (see the module docstring)."""
    bin_dir = layout.bin_dir
    rel_bin = Path(layout.scripts).as_posix()
    for name, template in (("activate", _ACTIVATE_SH), ("activate.fish", _ACTIVATE_FISH)):
        target = bin_dir / name
        target.unlink(missing_ok=True)
        target.write_text(template.replace(_BIN, rel_bin), encoding="utf-8")
    (bin_dir / "activate.csh").unlink(missing_ok=True)
    _rewrite_pyvenv_cfg(layout.root / "pyvenv.cfg")


def _pattern(needles: list[str]) -> re.Pattern[bytes]:
    """Any needle not followed by a name character: ``/tmp/b`` matches ``/tmp/b/x``, not ``/tmp/bar``."""
    alternatives = b"|".join(re.escape(os.fsencode(n)) for n in sorted(needles, key=len, reverse=True))
    return re.compile(b"(?:" + alternatives + rb")(?![\w.-])")


def _file_mentions(path: Path, pattern: re.Pattern[bytes], keep: int, chunk: int = 1 << 20) -> bool:
    """Whether the file matches, read in chunks; ``keep`` bytes overlap so no match is cut in two."""
    tail = b""
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            window = tail + block
            for match in pattern.finditer(window):
                if block == b"" or match.end() < len(window):  # at the window's end the next byte decides
                    return True
            if not block:
                return False
            tail = window[-keep:]


def find_references(root: Path, needles: list[str] | None = None) -> list[Path]:
    """Files and symlinks under ``root`` whose content or link target mentions any of ``needles`` (paths).

    ``needles`` defaults to ``root``'s absolute path (as given and resolved). A needle counts only where no
    name character follows it, so a build in ``/tmp/b`` is not confused with a mention of ``/tmp/bar``.
    """
    root = Path(root)
    if needles is None:
        needles = [os.path.abspath(root), os.path.realpath(root)]
    needles = [n for n in dict.fromkeys(needles) if n]
    pattern, keep = _pattern(needles), max(len(os.fsencode(n)) for n in needles) + 1
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = Path(dirpath, name)
            if path.is_symlink():
                if pattern.search(os.fsencode(os.readlink(path))):
                    found.append(path)
            elif path.is_file() and _file_mentions(path, pattern, keep):
                found.append(path)
    return found


def check_relocatable(root: Path) -> None:
    """Raise :class:`NotRelocatable` for the first file or symlink under ``root`` that mentions its path."""
    needle = os.path.abspath(root)
    found = find_references(root)
    if found:
        raise NotRelocatable(found[0], needle)
