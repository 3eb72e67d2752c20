"""Options every command shares: ``-v/--verbose`` and ``-q/--quiet`` (before or after the command name),
``--version``, and ``--retries`` of the commands that take ``--server``."""

from __future__ import annotations

import argparse
import sys


def version() -> str:
    from importlib import metadata  # only for --version: not on every command's start-up

    try:
        return metadata.version("venvsmith")
    except metadata.PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0,
                         help=help or "show the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        parser._print_message(f"venvsmith {version()}\n", sys.stdout)  # on stdout, as argparse's own
        parser.exit()


def add_global(parser: argparse.ArgumentParser) -> None:
    """``--version`` and the top-level ``-v``/``-q`` (``venvsmith -v resolve ...``)."""
    parser.add_argument("--version", action=_VersionAction)
    _add_verbosity(parser, argparse.SUPPRESS)
    parser.set_defaults(verbose=0, quiet=False)


def _add_verbosity(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="more detail on stderr: index requests, cache hits, timing per phase (-vv: every "
                             "library's debug log)")
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="print only results and errors (no notes, no progress)")


def complete_subcommands(sub: argparse._SubParsersAction, retries_default: int) -> None:
    """Give every command ``-v``/``-q`` and every command with ``--server`` a ``--retries``.

    Their defaults are suppressed in the commands so that a flag given before the command name is not reset by
    the command's own default (argparse copies a sub-parser's defaults over the top-level namespace)."""
    for parser in sub.choices.values():
        have = {option for action in parser._actions for option in action.option_strings}
        for action in parser._actions:
            if action.dest in ("verbose", "quiet"):  # a command's own -q (build, venv, verify)
                action.default = argparse.SUPPRESS
        if "-v" not in have and "--verbose" not in have:
            parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                                help="more detail on stderr: index requests, cache hits, timing per phase")
        if "-q" not in have and "--quiet" not in have:
            parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                                help="print only results and errors")
        if "--server" in have and "--retries" not in have:
            parser.add_argument("--retries", type=_retries, default=retries_default, metavar="N",
                                help=f"with --server: wait for a server that is not up (yet) N more times, with "
                                     f"backoff and jitter (default {retries_default}); 0: fail at once")


def _retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 100")
    return value


def wants_json(argv: list[str]) -> bool:
    """Whether the command line asks for ``--format json`` (read before argparse, which may fail)."""
    for i, arg in enumerate(argv):
        if arg == "--":
            return False
        if arg == "--format=json" or (arg == "--format" and i + 1 < len(argv) and argv[i + 1] == "json"):
            return True
    return False
