"""Operating the ``serve`` commands: their config file (``--config FILE``, TOML) and ``VENVSMITH_<KEY>`` variables,
metrics (``--metrics-port``), logs (``--log-format json``) and the shutdown on SIGTERM (``--grace-period``).

Every long option of ``serve`` is a key, spelled with underscores (``http_port``, ``metrics_port``,
``grace_period``); precedence: flag > environment variable > file > default. An unknown key or a bad value
is an error naming it and where it came from (exit 2).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from venvsmith.core import lifecycle

log = logging.getLogger("venvsmith.serve")

#: Options that are not configuration (the positional service, and the config file itself).
_NOT_KEYS = {"help", "service", "config", "verbose", "quiet"}
MAX_CONFIG_BYTES = 1024 * 1024


#: The gRPC port of each server when neither ``--port`` nor the ``port`` key says: apart, so that both run on one
#: host as they are (the builder also serves ResolverService on its port).
DEFAULT_PORTS = {"resolver": 50051, "builder": 50052}


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` shows each option's default (``(default: 20.0)``), as ArgumentDefaultsHelpFormatter does, except
    where there is none to show (None, False, an empty list) or the help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (action.default in (None, False, [], argparse.SUPPRESS) or "default" in text or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)".lstrip()


#: Why ``serve resolver --store`` is refused.
RESOLVER_STORE = ("the resolver keeps no artifacts (its caches are --cache); the lock documents it signs reach the "
                  "registry inside the environment images the builders publish: give it to serve builder --store")


class ConfigError(Exception):
    """A bad key or value in the config file or the environment (exit 2, the message names it)."""


def add_serve_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--config", metavar="FILE",
                       help="TOML file of serve options (keys: the long option names with underscores); "
                            "overridden by VENVSMITH_<KEY> variables, which flags override")
    serve.add_argument("--home", default=None,
                       help="state directory (caches, store; default: $VENVSMITH_HOME or the user cache directory)")
    serve.add_argument("--cache", metavar="URL", type=_cache_url, default=None,
                       help="where the resolution, metadata and index-page caches live: sqlite:///DIR (local "
                            "files; default: under --home) or redis://[[USER]:PASSWORD@]HOST:PORT/N (rediss:// for "
                            "TLS, verified against --cache-ca), shared by every replica given the same URL, with "
                            "single-flight of resolutions across them, and of builds (downloads, sdist builds, "
                            "venvs) across builders that also share one --store oci://...; the local files stay in "
                            "front, so a replica "
                            "keeps serving while Redis is down (or refuses the password or certificate): health "
                            "details say so, naming Redis without the password")
    serve.add_argument("--cache-ca", metavar="FILE", default=None,
                       help="CA bundle verifying a rediss:// cache's certificate (default: the system's)")
    serve.add_argument("--metrics-port", type=int, default=None,
                       help="serve Prometheus metrics on http://HOST:PORT/metrics (0 = any free port; default: off)")
    serve.add_argument("--health-port", type=int, default=None,
                       help="also serve grpc.health.v1 alone, in plaintext, on this port (same --host; 0 = any "
                            "free port): probes that cannot speak the main port's TLS (kubelet) use it. The same "
                            "health as the main port: NOT_SERVING while draining (default: off)")
    serve.add_argument("--otlp-endpoint", metavar="URL", default=None,
                       help="send OpenTelemetry traces (a span per RPC, W3C traceparent to the services called) "
                            "to this OTLP gRPC collector (http://HOST:PORT plaintext, https:// TLS; default: "
                            "$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or $OTEL_EXPORTER_OTLP_ENDPOINT, else off)")
    serve.add_argument("--grace-period", type=float, default=lifecycle.DEFAULT_GRACE_SECONDS,
                       help="seconds a SIGTERM'd server lets calls in flight finish (health NOT_SERVING, new "
                            "calls refused) before cancelling them and exiting 0")
    serve.add_argument("--log-format", choices=["text", "json"], default="text",
                       help="json: one JSON object per line (ts, level, logger, msg, request_id, rpc; trace_id and "
                            "span_id in a traced call)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None,
                       help="default: info with --log-format json, else warning")


def _cache_url(text: str) -> str:
    from venvsmith.core.fleet.cache_url import parse_cache_url

    try:
        parse_cache_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _serve_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["serve"]
    raise LookupError("the parser has no serve command")


def _keys(serve: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in serve._actions if a.option_strings and a.dest not in _NOT_KEYS}


def _line_of(text: str, key: str) -> int | None:
    match = re.search(rf"^[ \t]*{re.escape(key)}[ \t]*=", text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _convert(action: argparse.Action, value: Any, where: str) -> Any:
    """``value`` (from TOML, or a string from the environment) as the option would have parsed it."""
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, not {value!r}")
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else str(value).split(",") if isinstance(value, str) else [value]
        return [_scalar(action, item, where) for item in items]
    return _scalar(action, value, where)


def _scalar(action: argparse.Action, value: Any, where: str) -> Any:
    kind = action.type if callable(action.type) else str
    if isinstance(value, bool) or isinstance(value, list | dict):
        raise ConfigError(f"{where}: expected a {getattr(kind, '__name__', 'value')}, not {value!r}")
    if kind is int and isinstance(value, float):
        raise ConfigError(f"{where}: expected an integer, not {value!r}")
    try:
        converted = kind(value)
    except argparse.ArgumentTypeError as exc:  # the option's own check: its message shows what may be shown
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: invalid value {str(value)[:200]!r}: {exc}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{where}: {converted!r} is not one of {choices}")
    if isinstance(converted, int | float) and converted < 0:
        raise ConfigError(f"{where}: must not be negative, not {converted!r}")
    return converted


def read_config(path: str, keys: dict[str, argparse.Action]) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"--config {path}: larger than {MAX_CONFIG_BYTES} bytes")
    text = raw.decode("utf-8", errors="replace")
    import tomllib  # here: every command builds the parser that holds serve's options, few read a config

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        line = _line_of(text, key)
        where = f"{path}:{line}: key {key!r}" if line else f"{path}: key {key!r}"
        if key not in keys:
            known = ", ".join(sorted(keys))
            raise ConfigError(f"{where}: unknown key (known: {known})")
        values[key] = _convert(keys[key], value, where)
    return values


def read_environment(keys: dict[str, argparse.Action], environ: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, action in keys.items():
        name = f"VENVSMITH_{key.upper()}"
        if name in environ:
            values[key] = _convert(action, environ[name], f"environment variable {name}")
    return values


def apply_config(parser: argparse.ArgumentParser, argv: Sequence[str], args: argparse.Namespace) -> argparse.Namespace:
    """``args`` of ``serve`` re-parsed over the config file's and the environment's values; raises ConfigError."""
    if args.service == "resolver":
        for key in ("store", "store_ca"):
            if getattr(args, key, ""):  # on the command line (a shared config file's value is the builders')
                raise ConfigError(f"--{key.replace('_', '-')}: {RESOLVER_STORE}")
    serve = _serve_parser(parser)
    keys = _keys(serve)
    merged: dict[str, Any] = {}
    if args.config:
        merged.update(read_config(args.config, keys))
    merged.update(read_environment(keys, dict(os.environ)))
    if merged:
        serve.set_defaults(**merged)
        args = parser.parse_args(argv)
    if getattr(args, "port", 0) is None:
        args.port = DEFAULT_PORTS[args.service]
    _check_ranges(args)
    return args


def _check_ranges(args: argparse.Namespace) -> None:
    """Ports are 0-65535 and the grace is not negative, however they were given."""
    for key in ("port", "http_port", "metrics_port", "health_port"):
        value = getattr(args, key, None)
        if value is not None and not 0 <= value <= 65535:
            raise ConfigError(f"--{key.replace('_', '-')} ({key}): {value} is not a port (0-65535)")
    grace = getattr(args, "grace_period", 0.0)
    if not 0 <= grace < float("inf"):
        raise ConfigError(f"--grace-period (grace_period): {grace} is not a number of seconds >= 0")


def configure_serving(args: argparse.Namespace) -> None:
    """Logs (format and level) and the home directory, before any engine is made."""
    level = args.log_level or ("info" if args.log_format == "json" or args.verbose else "warning")
    if args.verbose:
        level = "debug"
    from venvsmith.core import jsonlog  # grpc: imported by the serve commands only, not by every parser build

    jsonlog.configure(args.log_format, getattr(logging, level.upper()))
    if args.home:
        os.environ["VENVSMITH_HOME"] = os.path.abspath(args.home)
    if getattr(args, "cache", None):  # read by every engine's settings (the builder's co-hosted resolver too)
        os.environ["VENVSMITH_CACHE"] = args.cache
    if getattr(args, "cache_ca", None):
        os.environ["VENVSMITH_CACHE_CA"] = os.path.abspath(args.cache_ca)


def announce(args: argparse.Namespace, text: str) -> None:
    """A start-up note for the operator: a log line (JSON with --log-format json), else a line on stderr."""
    if args.log_format == "json":
        log.info("%s", text)
    else:
        print(text, file=sys.stderr, flush=True)


def start_metrics(args: argparse.Namespace) -> Any:
    """The metrics HTTP server when ``--metrics-port`` is given (on ``--host``), else None."""
    if args.metrics_port is None:
        return None
    from venvsmith.core import observe

    server, port = observe.serve_metrics(args.host, args.metrics_port)
    announce(args, f"metrics on http://{args.host}:{port}/metrics")
    return server


def serve_until_signalled(server: Any, args: argparse.Namespace) -> bool:
    """Block until SIGTERM or SIGINT, then :func:`~venvsmith.core.lifecycle.drain_and_stop` within the grace;
    True when every call finished in it (False: some were cancelled, their threads may still be stuck)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    log.info("signalled: draining for at most %.1f s", args.grace_period)
    return lifecycle.drain_and_stop(server, None, args.grace_period)


def exit_after_drain(finished: bool) -> None:
    """After the engines are closed: when cancelled work may still hold a thread (a read from an index that
    trickles), exit 0 now instead of waiting for it at interpreter exit; the grace period is the bound."""
    if finished:
        return
    log.warning("exiting with cancelled work still running")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
