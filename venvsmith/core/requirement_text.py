"""Why a PEP 508 string does not parse, for a human: the column packaging stopped at, and what was meant.

The position and the reason are packaging's own (``InvalidRequirement`` is raised from a parser error that carries
the span); this module only words the common cases: an operator that does not exist (``foo>=>1``), an operator
without a version (``foo ==``), and a URL or path alone where ``name @ url`` is expected.
"""

from __future__ import annotations

import re

from packaging.requirements import InvalidRequirement

#: PEP 440 comparison operators.
OPERATORS = ("===", "==", "!=", "<=", ">=", "~=", "<", ">")
_OPERATOR_RUN = re.compile(r"[<>=!~]+")
_URL_OR_PATH = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|(?:git|hg|svn|bzr)\+|\.{0,2}/)")
#: Longest requirement shown whole with a caret under the offending column.
_SHOWN = 200


def explain(text: str, exc: InvalidRequirement, what: str = "requirement") -> str:
    """One message for ``text`` that packaging rejected with ``exc``: ``invalid requirement 'foo>=>1': no such
    operator '>=>' at column 4`` and, for short strings, the string with a caret under that column."""
    stripped = text.strip()
    shown = stripped if len(stripped) <= _SHOWN else stripped[:_SHOWN] + "…"
    head = f"invalid {what} {shown!r}"
    if _URL_OR_PATH.match(stripped):
        return (f"{head}: a URL or path alone is not a {what}: name the project, as in "
                f"'NAME @ {shown}' (PEP 508)")
    cause = exc.__cause__
    span = getattr(cause, "span", None)
    reason = getattr(cause, "message", None) or str(exc).split("\n", 1)[0]
    offset = len(text) - len(text.lstrip())
    if not span:
        return f"{head}: {reason}"
    column = span[1] - offset  # where packaging stopped, in the stripped string
    run = _OPERATOR_RUN.match(stripped, max(column, 0))
    # packaging stops at the start of a bad specifier (``foo>=>1``) or after the name (``foo =>1``)
    if run is None:
        run = _OPERATOR_RUN.match(stripped[column:].lstrip())
        if run is not None:
            column += len(stripped[column:]) - len(stripped[column:].lstrip())
            run = _OPERATOR_RUN.match(stripped, column)
    if run is not None and run.group() not in OPERATORS:
        why = f"no such operator {run.group()!r} at column {column + 1} (operators: {', '.join(OPERATORS)})"
    elif run is not None and not stripped[run.end():].strip(" ;"):
        why = f"operator {run.group()!r} at column {column + 1} needs a version after it"
    else:
        why = f"{reason[:1].lower() + reason[1:]} at column {column + 1}"
    if len(stripped) > _SHOWN:
        return f"{head}: {why}"
    return f"{head}: {why}\n    {stripped}\n    {' ' * column}^"
