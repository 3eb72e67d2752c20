"""The ``venvsmith`` command: the services embedded in-process by default, or remote with ``--server``."""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import logging
import sys
from collections.abc import Sequence

from venvsmith.cli.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE  # noqa: F401 - re-exported
from venvsmith.cli.messages import plural
from venvsmith.cli.security_args import (
    add_client_security,
    add_server_security,
    client_security,
    signing_keys,
)
from venvsmith.core.reqfile import ParsedRequirements, RequirementsFileError, read_requirements
from venvsmith.core.resolution import ResolverClient
from venvsmith.v1 import common_pb2, resolver_pb2


class _FormatControlAction(argparse.Action):
    """``--no-binary`` / ``--only-binary``: recorded in command-line order, as pip applies them."""

    def __call__(self, parser, namespace, values, option_string=None):
        ops = list(getattr(namespace, self.dest, None) or [])
        ops.append((option_string.lstrip("-"), values))
        setattr(namespace, self.dest, ops)


def _add_index_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index-url", "-i", help="default index (else pip's configuration)")
    p.add_argument("--extra-index-url", action="append", default=[], help="extra index, searched first")
    p.add_argument("--find-links", "-f", action="append", default=[], help="find-links directory or URL")
    p.add_argument("--no-index", action="store_true", help="use only find-links")
    p.add_argument(
        "--index-strategy", choices=["first-index", "unsafe-best-match"], default="first-index",
        help="first-index (default) protects private names; unsafe-best-match unions all indexes",
    )
    p.add_argument("--index", dest="package_index", action="append", default=[], metavar="NAME=URL",
                   help="only ask URL for project NAME")
    p.add_argument("--isolated", action="store_true",
                   help="ignore pip's configuration (files and PIP_* variables): only the indexes given here, "
                        "else pip's built-in default (also VENVSMITH_ISOLATED=1)")


def _add_target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--python-version", help="target Python X.Y or X.Y.Z (default: this interpreter)")
    p.add_argument("--platform", "--python-platform", dest="platform", default="",
                   help="target platform as uv spells it (linux, macos, windows, x86_64-manylinux_2_28, ...)")
    p.add_argument("--implementation", default="", help="cpython (default) or pypy")
    p.add_argument("--environment", metavar="FILE",
                   help="a target environment JSON as `venvsmith env --format json` prints it")


def add_resolve_inputs(p: argparse.ArgumentParser, server_help: str) -> None:
    """Requirements, constraints, index, target and resolution options (resolve, build and venv share them)."""
    p.add_argument("requirements", nargs="*", metavar="REQ")
    p.add_argument("-r", "--requirement", action="append", default=[], metavar="FILE")
    p.add_argument("-c", "--constraint", action="append", default=[], metavar="FILE")
    p.add_argument("--server", help=server_help)
    _add_index_options(p)
    _add_target_options(p)
    p.add_argument("--pre", action="store_true", help="allow pre-releases")
    p.add_argument("--no-binary", "--only-binary", dest="format_control", action=_FormatControlAction,
                   default=[], metavar="NAMES",
                   help="comma-separated project names, :all: or :none: (pip semantics)")
    p.add_argument("--exclude-newer", default="", metavar="TS", help="ignore files uploaded after TS")
    p.add_argument("--no-yanked", action="store_true", help="never choose yanked files")
    p.add_argument("--ignore-requires-python-upper-bound", action="store_true",
                   help="read Requires-Python by its lower bounds only, as uv does (default: honour it, as pip)")
    p.add_argument("--no-build", action="store_true",
                   help="never build an sdist to read dynamic dependencies (such sdists then fail the resolution)")
    p.add_argument("--max-backtracks", type=int, default=0)
    p.add_argument("--require-attestations", nargs="+", action="extend", default=[], metavar="NAME",
                   help="the pinned file of each named project (or :all:) must carry PEP 740 attestations that "
                        "verify offline against sigstore's shipped trust root; else the resolution fails. "
                        "Repeatable; put requirements before it (or after --)")
    p.add_argument("--no-cache", action="store_true", help="bypass the resolution cache")
    p.add_argument("--timeout", type=float, default=None, help="deadline in seconds")
    add_client_security(p)
    _add_forward_credentials(p)


def _add_forward_credentials(p: argparse.ArgumentParser) -> None:
    p.add_argument("--forward-credentials", action="store_true",
                   help="with --server over TLS (--tls-ca): send the credentials of your index URLs and your "
                        "netrc entries for their hosts with the request (default: never sent; the server uses "
                        "its own netrc, keyring or configuration). Refused over plaintext")


def _public_url(text: str) -> str:
    """``--public-url``: checked and normalised (a trailing slash)."""
    from venvsmith.core.public_url import check_public_url

    try:
        return check_public_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_serve_options(serve: argparse.ArgumentParser) -> None:
    """``venvsmith serve``'s arguments and options."""
    from venvsmith.cli.serve_options import DEFAULT_PORTS, DefaultsHelpFormatter

    serve.formatter_class = DefaultsHelpFormatter
    serve.add_argument("service", choices=["resolver", "builder"])
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=None,
                       help=f"gRPC port (0 = any free port; default: {DEFAULT_PORTS['resolver']} for the resolver, "
                            f"{DEFAULT_PORTS['builder']} for the builder)")
    serve.add_argument("--http-port", type=int, default=None,
                       help="builder: also serve blobs and wheelhouse indexes over HTTP on this port (0 = any)")
    serve.add_argument("--public-url", metavar="URL", type=_public_url, default=None,
                       help="builder: the base URL callers reach the HTTP endpoint at (behind a Kubernetes Service "
                            "or a proxy: its address), used in every artifact URL and wheelhouse link; http or "
                            "https, no user info, no query. Default: http(s)://HOST:HTTP-PORT/ with HOST the "
                            "--host address, or when that is 0.0.0.0/::, this host's name if it resolves to an "
                            "address of this host, else its first non-loopback address")
    serve.add_argument("--builder", metavar="HOST:PORT",
                       help="resolver: ask this builder (PrepareMetadata) for sdists with dynamic dependencies "
                            "(without it such sdists fail)")
    serve.add_argument("--resolver", metavar="HOST:PORT",
                       help="builder: resolve (build requirements too) through this remote resolver "
                            "(default: an embedded one, also served)")
    add_server_security(serve)
    from venvsmith.cli.serve_options import add_serve_options

    add_serve_options(serve)
    from venvsmith.core.admission import add_limit_options

    add_limit_options(serve)
    serve.add_argument("--allow-index", action="append", default=[], metavar="URL-PREFIX",
                       help="fetch only from locations under this URL prefix or directory (repeatable; replaces "
                            "the default: the hosts of the indexes and the find-links of this server's own "
                            "configuration)")
    serve.add_argument("--sandbox", choices=["auto", "bwrap", "namespaces", "none"], default="auto",
                       help="builder: what sdist builds run in (auto: bwrap, else Linux namespaces; refuses to start "
                            "when neither works, unless 'none')")
    from builder_service.store.disk_guard import add_free_space_option

    add_free_space_option(serve)
    from builder_service.store.choice import add_store_options

    add_store_options(serve)


def command_of(argv: Sequence[str]) -> str | None:
    """The command named in ``argv``: its first argument that is not an option (the options before a command,
    ``-v``, ``-q``, ``--version``, take no value); None when there is none (``--help``)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(wanted: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; with ``wanted`` (a command name), another command's parser is left without
    its options (``serve``'s import server modules, which a ``venv --server`` must not pay for)."""
    from venvsmith.cli import exits, options

    parser = argparse.ArgumentParser(prog="venvsmith", description=__doc__, epilog=exits.EPILOG)
    options.add_global(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    env = sub.add_parser("env", help="print a target environment (markers and ordered wheel tags)")
    env.add_argument("--format", choices=["text", "json", "summary"], default="text",
                     help="text: the markers and every tag; json: the same as data; summary: a few lines (the "
                          "interpreter, platform, tag count and the best tags)")
    env.add_argument("--server", help="ask a remote resolver (HOST:PORT)")
    _add_target_options(env)
    add_client_security(env, signed=False)  # DescribeEnvironment answers carry no signature

    res = sub.add_parser("resolve", help="resolve requirements to exact pins")
    add_resolve_inputs(res, "use a remote resolver (HOST:PORT) instead of the embedded one")
    res.add_argument("--format", choices=["text", "json", "requirements", "pylock"], default="text")
    res.add_argument("-o", "--output", help="write the rendering to this file instead of stdout")
    res.add_argument("--no-strip-extras", action="store_true",
                     help="--format requirements: keep each pin's extras in its line (pkg[a]==1.0); by default "
                          "they are stripped (pkg==1.0), as uv and pip-tools do, since what they require is pinned")

    serve = sub.add_parser("serve", help="run a server")
    if wanted in (None, "serve"):  # its options import the servers' modules: not for another command
        _add_serve_options(serve)

    from venvsmith.cli.build_args import add_commands

    add_commands(sub, add_resolve_inputs)

    from venvsmith.cli.verify import add_verify_command

    add_verify_command(sub, _add_index_options, _add_target_options)
    from venvsmith.cli.node_cache import add_command as add_node_cache_command

    add_node_cache_command(sub)

    config = sub.add_parser("config", help="show the index configuration resolve/build/venv use and send to a "
                                           "--server (command line, pip's configuration and environment)")
    _add_index_options(config)
    config.add_argument("--server", help="show what is sent to this server (credentials withheld unless "
                                         "--forward-credentials)")
    add_client_security(config)
    _add_forward_credentials(config)
    from venvsmith.clients.retry import DEFAULT_RETRIES

    options.complete_subcommands(sub, DEFAULT_RETRIES)
    for command in sub.choices.values():
        command.epilog = command.epilog or exits.EPILOG
    return parser


def _read_environment(path: str) -> common_pb2.TargetEnvironment:
    """A target environment JSON file as ``venvsmith env --format json`` writes it."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except OSError as exc:
        raise RequirementsFileError(path, 0, f"cannot read --environment file: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise RequirementsFileError(path, 0, f"--environment file is not JSON: {exc}") from None
    if not (isinstance(doc, dict) and isinstance(doc.get("markers"), dict) and isinstance(doc.get("tags"), list)):
        raise RequirementsFileError(path, 0, "--environment file needs a \"markers\" object and a \"tags\" list")
    try:
        return common_pb2.TargetEnvironment(
            markers={str(k): str(v) for k, v in doc["markers"].items()}, tags=[str(t) for t in doc["tags"]],
            python_version=str(doc.get("python_version") or ""), platform=str(doc.get("platform") or ""),
            interpreter=str(doc.get("interpreter") or ""),
        )
    except (TypeError, ValueError) as exc:
        raise RequirementsFileError(path, 0, f"bad --environment file: {exc}") from None


def _target_spec(args) -> common_pb2.TargetSpec:
    if getattr(args, "environment", None):
        return common_pb2.TargetSpec(environment=_read_environment(args.environment))
    if args.python_version or args.platform or args.implementation:
        if not args.python_version:
            import platform as _platform

            args.python_version = _platform.python_version()
        return common_pb2.TargetSpec(shorthand=common_pb2.TargetShorthand(
            python_version=args.python_version, platform=args.platform, implementation=args.implementation,
        ))
    return common_pb2.TargetSpec()


def _local_path(location: str) -> str:
    from venvsmith.cli.sent_config import local_path

    return local_path(location)


def is_isolated(args) -> bool:
    """``--isolated`` or ``VENVSMITH_ISOLATED=1``: pip's configuration is ignored."""
    from venvsmith.core.config import isolated

    return bool(getattr(args, "isolated", False)) or isolated()


def index_config(args, parsed: ParsedRequirements) -> common_pb2.IndexConfig:
    """The index options of the command line, completed by those found in requirements files (``parsed``)."""
    index = common_pb2.IndexConfig(
        index_url=args.index_url or parsed.index_url or "",
        extra_index_urls=[*args.extra_index_url, *parsed.extra_index_urls],
        find_links=[*(_local_path(f) for f in args.find_links), *parsed.find_links],
        no_index=args.no_index or parsed.no_index,
        strategy=common_pb2.UNSAFE_BEST_MATCH if args.index_strategy == "unsafe-best-match"
        else common_pb2.FIRST_INDEX,
        isolated=is_isolated(args),
    )
    for item in args.package_index:
        name, sep, url = item.partition("=")
        if not sep:
            raise RequirementsFileError("--index", 0, f"expected NAME=URL, got {item!r}")
        index.package_index[name.strip()] = url.strip()
    return index


def pip_config(args):
    """This caller's pip configuration (files and ``PIP_*``), or nothing when :func:`is_isolated`."""
    from venvsmith.core.config import PipIndexConfig, effective_pip_config

    return PipIndexConfig() if is_isolated(args) else effective_pip_config()


def effective_index(args, parsed: ParsedRequirements, pip) -> common_pb2.IndexConfig:
    """:func:`index_config` completed from this caller's pip configuration ``pip``: what the embedded engine
    resolves with, and (credentials aside, see :func:`outgoing`) what ``--server`` sends."""
    from venvsmith.cli.sent_config import complete_from_pip

    return complete_from_pip(index_config(args, parsed), pip)


def build_request(args) -> resolver_pb2.ResolveRequest:
    """Turn CLI arguments (the files they name, and pip's configuration) into a ResolveRequest: the caller's
    effective configuration, credentials included (:func:`outgoing` makes the copy a server gets)."""
    parsed = ParsedRequirements()
    pip = pip_config(args)
    for kind, value in args.format_control:  # the command line first; files may override, as in pip
        parsed.format_control.add(kind, value)
    for path in args.requirement:
        read_requirements(path, parsed)
    for path in pip.constraints:  # pip's `constraint` / PIP_CONSTRAINT, before the command line's, as pip
        read_requirements(path, parsed, constraint=True)
    for path in args.constraint:
        read_requirements(path, parsed, constraint=True)
    requirements = [*parsed.requirements, *args.requirements]
    index = effective_index(args, parsed, pip)
    options = common_pb2.ResolutionOptions(
        prereleases=common_pb2.ALLOW if (args.pre or parsed.pre) else common_pb2.IF_NECESSARY_OR_EXPLICIT,
        no_binary=parsed.no_binary,
        only_binary=parsed.only_binary,
        exclude_newer=args.exclude_newer,
        disallow_yanked=args.no_yanked,
        ignore_requires_python_upper_bound=args.ignore_requires_python_upper_bound,
        max_backtracks=max(args.max_backtracks, 0),
        no_build=args.no_build,
        require_attestations=args.require_attestations,
    )
    return resolver_pb2.ResolveRequest(
        requirements=requirements, constraints=parsed.constraints, target=_target_spec(args),
        index=index, options=options, no_cache=args.no_cache,
    )


def outgoing(args, request: resolver_pb2.ResolveRequest) -> resolver_pb2.ResolveRequest:
    """``request`` as sent with ``--server``: URL credentials removed, unless ``--forward-credentials`` (over TLS
    only; else :class:`SecurityConfigError`, exit 2) sends them, and this caller's netrc's, as IndexCredential.
    Without ``--server``: ``request`` itself (the embedded engine acts for this user)."""
    server = getattr(args, "server", None)
    forward = bool(getattr(args, "forward_credentials", False))
    if not server:
        return request
    from venvsmith.cli.sent_config import for_server

    security = client_security(args, server)
    sent = for_server(request.index, forward=forward, tls=bool(security.ca))
    for url in sent.withheld:
        print(f"note: credentials of {url} are not sent to the server (it uses its own netrc, keyring or "
              "configuration; --forward-credentials over TLS sends them)", file=sys.stderr)
    wire = resolver_pb2.ResolveRequest()
    wire.CopyFrom(request)
    wire.index.CopyFrom(sent.index)
    return wire


def render(response: resolver_pb2.ResolveResponse, fmt: str, *, strip_extras: bool = True) -> str:
    if fmt == "json":
        doc = {
            "pins": [
                {
                    "name": p.name, "version": p.version, "extras": list(p.extras), "url": p.url,
                    "filename": p.filename, "sha256": p.sha256, "size": p.size, "index": p.index,
                    "is_wheel": p.is_wheel, "requires_python": p.requires_python,
                    "required_by": list(p.required_by),
                }
                for p in response.pins
            ],
            "lock_key": response.lock_key,
            "stats": {
                "elapsed_ms": round(response.stats.elapsed_ms, 3),
                "resolution_cache_hit": response.stats.resolution_cache_hit,
                "pages_fetched": response.stats.pages_fetched,
                "pages_cached": response.stats.pages_cached,
                "metadata_fetched": response.stats.metadata_fetched,
                "metadata_cached": response.stats.metadata_cached,
                "backtracks": response.stats.backtracks,
            },
        }
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "requirements":
        if strip_extras:
            return response.requirements_txt
        from venvsmith.core.pin import with_extras

        return with_extras(response.requirements_txt, {p.name: list(p.extras) for p in response.pins})
    if fmt == "pylock":
        return response.pylock_toml
    width = max((len(p.name) + len(p.version) + 2 for p in response.pins), default=0)
    lines = [f"{(p.name + '==' + p.version):<{width}}  {p.filename}  ({p.index})" for p in response.pins]
    stats = response.stats
    lines.append(
        f"# {plural(len(response.pins), 'pin')}, lock key {response.lock_key}, {stats.elapsed_ms:.0f} ms"
        + (" (cached)" if stats.resolution_cache_hit else "")
    )
    return "\n".join(lines) + "\n"


#: Tags ``env --format summary`` shows.
SUMMARY_TAGS = 3


def render_env(env: common_pb2.TargetEnvironment, fmt: str) -> str:
    if fmt == "json":
        doc = {"markers": dict(sorted(env.markers.items())), "tags": list(env.tags),
               "python_version": env.python_version, "platform": env.platform,
               "interpreter": env.interpreter}
        return json.dumps(doc, indent=2) + "\n"
    lines = [f"python {env.python_version}" + (f" ({env.interpreter})" if env.interpreter else "")]
    if fmt == "summary":
        markers = env.markers
        lines[0] += (f": {markers.get('implementation_name', '?')} on {markers.get('sys_platform', '?')} "
                     f"{markers.get('platform_machine', '?')}" + (f", platform {env.platform}" if env.platform else ""))
        if env.metadata_builder:
            lines.append(f"metadata builder: {env.metadata_builder}")
        best = ", ".join(env.tags[:SUMMARY_TAGS])
        more = f", ... ({len(env.tags) - SUMMARY_TAGS} more: --format text)" if len(env.tags) > SUMMARY_TAGS else ""
        lines.append(f"tags: {len(env.tags)}, best first: {best}{more}")
        return "\n".join(lines) + "\n"
    if env.platform:
        lines.append(f"platform {env.platform}")
    if env.metadata_builder:
        lines.append(f"metadata builder: {env.metadata_builder}")
    lines.append("markers:")
    lines += [f"  {k} = {v!r}" for k, v in sorted(env.markers.items())]
    lines.append(f"tags ({len(env.tags)}, best first):")
    lines += [f"  {t}" for t in env.tags]
    return "\n".join(lines) + "\n"


def _client(args) -> ResolverClient:
    from venvsmith.cli.compose import resolver_client

    server = getattr(args, "server", None)
    return resolver_client(server, isolated=is_isolated(args), security=client_security(args, server),
                           retries=getattr(args, "retries", None))


def check_signed(args, response) -> int:
    """With ``--trusted-key``: 0 when a trusted key signed ``response``'s lock document, else the reason on
    stderr and exit 1 (a bad key file: exit 2)."""
    _, trusted = signing_keys(args)
    if trusted is None:
        return EXIT_OK
    from venvsmith.core.signed_lock import check_response
    from venvsmith.core.signing import UntrustedAnswer

    try:
        check_response(response, trusted)
    except UntrustedAnswer as exc:
        print(f"error: refusing the answer: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_resolve(args) -> int:
    from venvsmith.cli.messages import note
    from venvsmith.cli.verbose import phase, resolve_verbosely

    with phase("read requirements", args.verbose):
        request = outgoing(args, build_request(args))
    if not request.requirements:
        from venvsmith.cli.exits import EXIT_BAD_INPUT as BAD
        from venvsmith.cli.exits import CommandFailed

        raise CommandFailed("INVALID_ARGUMENT", "no requirements given: name some (REQ ...) or a file (-r FILE)", BAD)
    with phase("resolve", args.verbose), _client(args) as client:
        if args.verbose:
            response = resolve_verbosely(client, request, args.timeout)
        else:
            response = client.resolve(request, timeout=args.timeout)
    for text in response.notes:  # time sources under exclude-newer, PEP 792 archived/deprecated projects
        note(text, quiet=args.quiet)
    refused = check_signed(args, response)
    if refused:
        return refused
    with phase("write", args.verbose):
        text = render(response, args.format, strip_extras=not args.no_strip_extras)
        if args.output:
            try:
                with open(args.output, "w", encoding="utf-8") as fh:
                    fh.write(text)
            except OSError as exc:
                raise RequirementsFileError(args.output, 0, f"cannot write: {exc.strerror or exc}") from None
        else:
            sys.stdout.write(text)
    return EXIT_OK


def cmd_env(args) -> int:
    with _client(args) as client:
        env = client.describe(resolver_pb2.DescribeEnvironmentRequest(target=_target_spec(args)))
    sys.stdout.write(render_env(env, args.format))
    return EXIT_OK


def cmd_serve(args) -> int:
    from venvsmith.cli import serve_start
    from venvsmith.cli.listen import check_ports

    check_ports(args.host, {"--port": args.port, "--http-port": getattr(args, "http_port", None),
                            "--metrics-port": getattr(args, "metrics_port", None),
                            "--health-port": getattr(args, "health_port", None)})  # exit 2 before anything starts
    try:
        if args.service == "builder":
            from venvsmith.cli import build as cli_build

            return cli_build.cmd_serve_builder(args)
        return _serve_resolver(args)
    except serve_start.StartupError as exc:
        return serve_start.failed(exc)


def _serve_resolver(args) -> int:
    from resolver_service.service import make_server
    from venvsmith.cli import serve_options, serve_start
    from venvsmith.cli.compose import resolver_server_engine
    from venvsmith.core import observe

    start = serve_start.prepare(args)
    if getattr(args, "store", ""):  # from a config file or environment shared with the builders
        serve_options.announce(args, "store is a builder setting: this resolver keeps no artifacts (its lock "
                                     "documents reach the registry in the builders' environment images)")
    engine = resolver_server_engine(args.builder, client_security(args, args.builder), allow=start.allow,
                                    signer=start.signer)
    server, port, engine = serve_start.listen(
        start, args.port, lambda address: make_server(address, engine, security=start.security,
                                                      limits=start.limits), engine.close)
    builder = engine.metadata_preparer
    serve_options.announce(
        args, f"metadata builder: {builder.description if builder else 'none: ' + engine.without_preparer}")
    observe.add_source(engine, lambda e: {"venvsmith_resolutions_total": e.resolutions_run})
    return serve_start.run(args, start, server, engine.close, [f"venvsmith resolver listening on {start.host}:{port}"])


def cmd_config(args) -> int:
    """The effective index configuration, field by field as a request carries it, with where each value came
    from, pip's constraints, and the pip settings ignored."""
    from venvsmith.core.config import default_index_url, isolated, venvsmith_home
    from venvsmith.core.index.auth import redact

    pip = pip_config(args)
    local = effective_index(args, ParsedRequirements(), pip)
    from venvsmith.cli.sent_config import for_server
    from venvsmith.core.tls import ClientSecurity

    sent = for_server(local, forward=args.forward_credentials, tls=bool(ClientSecurity.from_args(args).ca)).index
    print(f"home:             {venvsmith_home()}")
    if isolated() or args.isolated:
        print("isolated:         pip's configuration is ignored (--isolated or VENVSMITH_ISOLATED)")
    print(f"index-url:        {redact(local.index_url or default_index_url(pip))}"  # credentials never printed
          + ("" if local.index_url else "  (none configured: a --server uses its own default)"))
    print(f"extra-index-urls: {' '.join(map(redact, local.extra_index_urls)) or '-'}")
    print(f"find-links:       {' '.join(map(redact, local.find_links)) or '-'}")
    print(f"no-index:         {local.no_index}")
    print(f"constraints:      {' '.join(pip.constraints) or '-'}")
    for key, origin in sorted(pip.origins.items()):
        if key not in {k for k, _, _ in pip.ignored}:
            print(f"  {key} from {origin}")
    for key, origin, why in pip.ignored:
        print(f"ignored:          {key} (from {origin}): {why}")
    print("sent with --server (fields left empty take the server's own configuration):")
    print(f"  index_url:        {redact(sent.index_url) or '(empty)'}")
    print(f"  extra_index_urls: {' '.join(map(redact, sent.extra_index_urls)) or '(empty)'}")
    print(f"  find_links:       {' '.join(map(redact, sent.find_links)) or '(empty)'}")
    print(f"  no_index:         {sent.no_index}")
    print(f"  isolated:         {sent.isolated}")
    forwarded = [c.url_prefix for c in sent.credentials]
    withheld = [redact(u) for u in (local.index_url, *local.extra_index_urls, *local.find_links) if "@" in u]
    print(f"  credentials:      {'forwarded for ' + ' '.join(forwarded) if forwarded else 'none'}"
          + (f" (kept here: {' '.join(withheld)})" if withheld and not forwarded else ""))
    return EXIT_OK


COMMANDS = {"resolve": cmd_resolve, "env": cmd_env, "serve": cmd_serve, "config": cmd_config}


def _builder_command(name: str):
    def run(args) -> int:
        from venvsmith.cli import build as cli_build

        return getattr(cli_build, f"cmd_{name}")(args)

    return run


COMMANDS.update({name: _builder_command(name) for name in ("build", "venv", "fetch")})


def _cmd_verify(args) -> int:
    from venvsmith.cli.verify import cmd_verify

    return cmd_verify(args)


COMMANDS["verify"] = _cmd_verify


def _cmd_node_cache(args) -> int:
    from venvsmith.cli.node_cache import cmd_node_cache

    return cmd_node_cache(args)


COMMANDS["node-cache"] = _cmd_node_cache


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (see :mod:`venvsmith.cli.exits`: 0 ok, 1 no solution or failure,
    2 bad input or usage, 3 unavailable)."""
    try:
        return _main(argv)
    finally:
        if argv is None:  # the program itself (the console script), not a caller in a longer-lived process
            # The interpreter's exit runs a full collection over every object still alive (the parsed pages, the
            # memoised versions, the modules): 0.1-0.2 s after a resolution. Frozen objects are skipped there
            # and still freed as the interpreter tears down.
            gc.freeze()


def _main(argv: Sequence[str] | None) -> int:
    from venvsmith.cli import exits, options

    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = options.wants_json(argv)
    parser = build_parser(command_of(argv))
    usage = io.StringIO()
    try:
        with contextlib.redirect_stderr(usage):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2), printed on usage
        sys.stderr.write(usage.getvalue())
        code = exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
        if code and as_json:
            message = usage.getvalue().strip().splitlines()[-1:] or ["bad usage"]
            _print_json(exits.local_failure(exits.USAGE, message[0], code))
        return code
    sys.stderr.write(usage.getvalue())
    _configure_logging(args)
    if args.command != "serve":
        # A short-lived process that allocates many small objects and few cycles: collect far less often
        # (measured: 0.15-0.2 s of a cold resolution went to the cycle collector).
        gc.freeze()
        gc.set_threshold(200_000, 50, 50)
    try:
        if args.command == "serve":
            from venvsmith.cli.serve_options import apply_config

            args = apply_config(parser, argv, args)
        return COMMANDS[args.command](args)
    except (Exception, KeyboardInterrupt) as exc:
        failure = exits.failure_of(exc)
        if failure is None:
            raise
    from venvsmith.cli import messages

    messages.print_failure(failure, show_status=bool(getattr(args, "server", None)), show_reason=bool(args.verbose))
    if as_json and getattr(args, "format", "") == "json":
        _print_json(failure)
    return failure.exit


def _print_json(failure) -> None:
    """A failure as ``{"error": {...}}`` on stdout: a script that asked for JSON always gets JSON."""
    sys.stdout.write(json.dumps(failure.to_json(), indent=2) + "\n")
    sys.stdout.flush()


def _configure_logging(args) -> None:
    """``-v``: venvsmith's debug log and every library's info; ``-vv``: every library's debug log (stderr)."""
    level = logging.WARNING
    if args.verbose >= 2:
        level = logging.DEBUG
    elif args.verbose:
        level = logging.INFO
    if args.quiet:
        level = logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose:
        logging.getLogger("venvsmith").setLevel(logging.DEBUG)


if __name__ == "__main__":
    sys.exit(main())
