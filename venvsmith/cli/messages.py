"""What the commands print on stderr besides their results: errors, hints, notes and ``-v`` detail.

Colour only on a terminal, unless ``NO_COLOR`` (any non-empty value: never) or ``FORCE_COLOR`` (non-empty and not
``0``: even when not a terminal) say otherwise; ``NO_COLOR`` wins when both are set (https://no-color.org).
"""

from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from venvsmith.cli.exits import Failure

_STYLES = {"error": "1;31", "hint": "36", "note": "33", "warning": "33", "detail": "2"}


def use_colour(stream: IO[str], environ: dict[str, str] | None = None) -> bool:
    """Whether ``stream`` gets ANSI colours (see the module docstring)."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and env.get("TERM") != "dumb"


def paint(text: str, style: str, stream: IO[str]) -> str:
    """``text`` in ``style`` (error, hint, note, warning, detail) when ``stream`` takes colour."""
    return f"\x1b[{_STYLES[style]}m{text}\x1b[0m" if use_colour(stream) else text


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 pin``, ``2 pins``, ``0 pins`` (``words`` when the plural is not ``word + "s"``)."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def _label(line: str) -> str | None:
    for style in ("hint", "note", "warning"):
        if line.startswith(f"{style}:"):
            return style
    return None


def render_failure(failure: Failure, *, show_status: bool, show_reason: bool = False, stream: IO[str]) -> str:
    """The text of ``failure`` on ``stream``: ``error: MESSAGE`` (``error (STATUS): ...`` when ``show_status``,
    which is so for ``--server`` calls and with ``-v``; ``error (STATUS, REASON)`` when ``show_reason``: ``-v``),
    its ``hint:`` lines coloured as hints."""
    label = "error"
    if (show_status or show_reason) and failure.code:
        label += f" ({failure.code}" + (f", {failure.reason}" if failure.reason and show_reason else "") + ")"
    first, *rest = failure.message.split("\n") or [""]
    lines = [f"{paint(label + ':', 'error', stream)} {first}"]
    for line in [*rest, *(f"hint: {h}" for h in failure.hints)]:
        style = _label(line.lstrip())
        lines.append(paint(line, style, stream) if style else line)
    return "\n".join(lines) + "\n"


def print_failure(failure: Failure, *, show_status: bool, show_reason: bool = False) -> None:
    sys.stderr.write(render_failure(failure, show_status=show_status, show_reason=show_reason, stream=sys.stderr))
    sys.stderr.flush()


def note(text: str, *, quiet: bool = False) -> None:
    """``note: TEXT`` on stderr (nothing with ``-q``)."""
    if not quiet:
        print(f"{paint('note:', 'note', sys.stderr)} {text}", file=sys.stderr)


def detail(text: str) -> None:
    """One ``-v`` line on stderr."""
    print(paint(text, "detail", sys.stderr), file=sys.stderr, flush=True)
