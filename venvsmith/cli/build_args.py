"""The arguments of ``venvsmith build``, ``venv`` and ``fetch``: kept apart from :mod:`venvsmith.cli.build` so
that building the parser (every command) does not load the builder's client and messages."""

from __future__ import annotations

import argparse


class _IntermixedParser(argparse.ArgumentParser):
    """Positionals may follow options (``venv PATH --index-url URL pkg``): plain argparse gives ``PATH`` and the
    requirements to the first run of positionals only and rejects the later ones as unrecognized."""

    _inner = False

    def parse_known_args(self, args=None, namespace=None):
        if self._inner:  # parse_known_intermixed_args calls back into this method
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


_BUILD_OUTPUT_HELP = ("show the output of each sdist build on stderr as it runs, each line prefixed by its "
                      "project (the builder streams it; remote with --server too)")


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """``-v`` after the command (``venvsmith build ... -v``), unless the command already has one; it adds to the
    main parser's ``-v`` (read as ``getattr(args, "verbose", 0)``)."""
    if any("-v" in action.option_strings for action in parser._actions):
        return
    parser.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=_BUILD_OUTPUT_HELP)


#: ``venv --link-mode`` values: builder_service.materialize.LINK_MODES (a test keeps them equal), not imported so
#: that the CLI's start-up stays light.
LINK_MODES = ("hardlink", "copy", "symlink", "reflink")


def add_commands(sub, add_resolve_inputs) -> None:
    build = sub.add_parser("build", help="resolve and build: print artifact references (wheels, wheelhouse, venv)")
    build.__class__ = _IntermixedParser
    add_resolve_inputs(build, "use a remote builder (HOST:PORT) instead of the embedded engines")
    build.add_argument("--no-venv", action="store_true", help="do not build the venv archive")
    build.add_argument("--no-wheelhouse", action="store_true", help="do not build the wheelhouse archive")
    build.add_argument("--compile", action="store_true", help="compile bytecode in the venv")
    build.add_argument("--seed", action="store_true",
                       help="put pip into the venv (the pip bundled with the interpreter's ensurepip; offline). "
                            "Default: a lean venv of exactly the pins, without pip")
    build.add_argument("--build-timeout", type=int, default=0, help="seconds one sdist build may take")
    build.add_argument("--format", choices=["text", "json"], default="text")
    build.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    _add_verbose(build)

    venv = sub.add_parser("venv", help="resolve, build, fetch and unpack a ready venv at PATH")
    venv.__class__ = _IntermixedParser
    venv.add_argument("path", metavar="PATH")
    add_resolve_inputs(venv, "use a remote builder (HOST:PORT) instead of the embedded engines")
    venv.add_argument("--compile", action="store_true", help="compile bytecode in the venv")
    venv.add_argument("--seed", action="store_true",
                      help="put pip into the venv (the pip bundled with the interpreter's ensurepip; offline). "
                           "Default: a lean venv of exactly the pins, without pip")
    venv.add_argument("--build-timeout", type=int, default=0, help="seconds one sdist build may take")
    venv.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    _add_verbose(venv)
    venv.add_argument("--link-mode", choices=LINK_MODES, default=None,
                      help="how the venv's files are placed from the unpacked template of its archive kept under "
                           "$VENVSMITH_HOME, as uv's --link-mode: hardlink (default; fast; venvs share files, an "
                           "in-place edit is seen in the venvs linked before it, never in later ones: a changed "
                           "template is rebuilt), copy (unpacked afresh), reflink (copy-on-write clones where the "
                           "filesystem supports them, else copies), symlink (links into the template: breaks when "
                           "$VENVSMITH_HOME is cleaned). Env: VENVSMITH_LINK_MODE. With --server the fetched "
                           "archive is unpacked")
    venv.add_argument("--clear", action="store_true",
                      help="remove everything in PATH first when it is an existing non-empty directory (as uv "
                           "venv --clear); symlinks in it are removed, never followed")
    venv.add_argument("--no-verify", action="store_true",
                      help="with --server: do not check the server's pins against your own indexes (hashes, "
                           "requirements, dependency closure) before unpacking")
    from venvsmith.cli.node_cache import add_venv_options

    add_venv_options(venv)

    fetch = sub.add_parser("fetch", help="fetch an artifact by digest (sha256:<hex>/<size>) to DEST")
    fetch.add_argument("ref", metavar="REF")
    fetch.add_argument("dest", metavar="DEST")
    fetch.add_argument("--server", help="a remote builder (HOST:PORT); default: the local store")
    from venvsmith.cli.security_args import add_client_security

    add_client_security(fetch, signed=False)  # a digest checks the bytes; nothing is signed
