"""Exit codes (0 ok, 1 no, 2 bad input, 3 unavailable), the JSON error object of ``--format json``, error messages,
``--version``, ``-v``/``-q`` and ``--retries``: what scripts rely on.

Hermetic as tests/cli/test_cli.py: local indexes only, a real port nothing listens on, real servers."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.builder_server import ResolverProcess, cli, hermetic_env
from tests.fixtures.hermetic import isolate
from tests.fixtures.index import IndexBuilder, IndexServer
from venvsmith.cli import main
from venvsmith.cli.exits import exit_code
from venvsmith.cli.messages import plural, use_colour

LINUX = ["--python-version", "3.11", "--platform", "x86_64-manylinux_2_28"]
STATUSES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
            "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
            "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"]


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate(monkeypatch, tmp_path / "home", also=("NO_COLOR", "FORCE_COLOR"))


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[IndexServer]:
    b = IndexBuilder(tmp_path_factory.mktemp("exits-index"))
    b.add("requests", "2.0", deps=["urllib3"])
    b.add("urllib3", "1.0")
    b.add("left", "1.0", deps=["urllib3>=2"])
    b.add("right", "1.0", deps=["urllib3<2"])
    with IndexServer(b) as server:
        yield server


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def dead_address() -> str:
    """A loopback port that was just bound and closed: nothing listens there."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


# ------------------------------------------------------------------------------------------ the contract


@given(st.sampled_from(STATUSES), st.sampled_from(["", "NO_SOLUTION", "SERVER_BUSY", "STORE_FULL",
                                                  "TOO_MANY_BACKTRACKS", "INVALID_INPUT"]))
def test_every_status_has_one_of_the_four_exit_codes(status, reason):
    code = exit_code(status, reason)
    assert code in (0, 1, 2, 3)
    assert (code == 0) == (status == "OK")
    if status in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        assert code == 3
    assert exit_code(status, "BUILD_TIMEOUT") == (0 if status == "OK" else 1)  # --build-timeout: the build failed
    if status in ("INVALID_ARGUMENT", "UNAUTHENTICATED", "PERMISSION_DENIED"):
        assert code == 2
    if status == "FAILED_PRECONDITION":
        assert code == 1
    if status == "RESOURCE_EXHAUSTED":  # a busy server is worth retrying, a resolution too hard is not
        assert code == (3 if reason in ("SERVER_BUSY", "STORE_FULL") else 1)


def test_no_solution_1_bad_input_2_embedded(capsys, index):
    code, out, err = run(capsys, "resolve", "--index-url", index.url, *LINUX, "left", "right")
    assert code == 1 and out == "" and "no solution" in err
    code, out, err = run(capsys, "resolve", "--index-url", index.url, *LINUX, "left>=>1")
    assert code == 2 and out == ""


@pytest.mark.parametrize("command", [
    ["resolve", "requests"], ["env"], ["build", "requests"], ["fetch", "sha256:" + "0" * 64 + "/3", "out"],
])
def test_a_server_nothing_listens_on_exits_3_naming_it(capsys, index, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    dead = dead_address()
    extra = ["--index-url", index.url] if command[0] in ("resolve", "build") else []
    code, out, err = run(capsys, *command, *extra, "--server", dead, "--retries", "1")
    assert code == 3, err
    assert out == ""
    assert dead in err and "may not be running" in err
    assert "2 attempts" in err  # --retries 1: one wait, then one more
    assert "Traceback" not in err


def test_venv_against_a_dead_server_exits_3(capsys, index, tmp_path):
    dead = dead_address()
    code, _, err = run(capsys, "venv", str(tmp_path / "env"), "--server", dead, "--retries", "0",
                       "--index-url", index.url, "requests")
    assert code == 3 and dead in err


@pytest.mark.slow
def test_a_server_that_starts_late_is_waited_for(tmp_path, index):
    address = dead_address()
    port = address.rsplit(":", 1)[1]
    client = subprocess.Popen(
        cli("resolve", "-v", "--server", address, "--retries", "12", "--format", "json", "--index-url", index.url,
            *LINUX, "requests"),
        env=hermetic_env(tmp_path / "client"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert client.stderr is not None
        seen = []
        for line in client.stderr:  # the client has tried, and found nothing there: now start the server
            seen.append(line)
            if "waiting for the resolver at" in line:
                break
        assert seen and "waiting for the resolver at" in seen[-1], seen
        with ResolverProcess(tmp_path / "server", "--port", port, allow=[index.base_url]):
            out, err = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, err
    assert {p["name"] for p in json.loads(out)["pins"]} == {"requests", "urllib3"}


def test_retries_zero_fails_at_once_and_bad_retries_is_usage(capsys, index):
    code, _, err = run(capsys, "resolve", "--server", dead_address(), "--retries", "0", "requests")
    assert code == 3 and "1 attempt " in err
    code, _, err = run(capsys, "resolve", "--server", dead_address(), "--retries", "lots", "requests")
    assert code == 2 and "lots" in err


# ------------------------------------------------------------------------------------------ --format json


def _error(out: str) -> dict:
    doc = json.loads(out)
    assert set(doc) == {"error"} and {"code", "message", "details"} <= set(doc["error"])
    assert isinstance(doc["error"]["details"], list)
    return doc["error"]


def test_json_error_object_for_no_solution(capsys, index):
    code, out, _ = run(capsys, "resolve", "--format", "json", "--index-url", index.url, *LINUX, "left", "right")
    assert code == 1
    error = _error(out)
    assert error["code"] == "FAILED_PRECONDITION" and "no solution" in error["message"]
    info = [d for d in error["details"] if d["@type"].endswith("google.rpc.ErrorInfo")]
    assert info and info[0]["reason"] == "NO_SOLUTION"
    conflicts = [v for d in error["details"] if d["@type"].endswith("PreconditionFailure") for v in d["violations"]]
    assert any("urllib3>=2 (required by left==1.0)" in v["description"] for v in conflicts)


def test_json_error_object_for_bad_input_usage_and_unavailable(capsys, index, tmp_path):
    code, out, _ = run(capsys, "resolve", "--format", "json", "--index-url", index.url, "left>=>1")
    assert code == 2
    error = _error(out)
    assert error["code"] == "INVALID_ARGUMENT"
    fields = [v for d in error["details"] if d["@type"].endswith("BadRequest") for v in d["fieldViolations"]]
    assert fields and fields[0]["field"] == "requirements[0]"
    code, out, _ = run(capsys, "resolve", "--format=json", "--no-such-flag", "x")
    assert code == 2 and _error(out)["code"] == "USAGE"
    code, out, _ = run(capsys, "resolve", "--format", "json", "-r", str(tmp_path / "missing.txt"))
    assert code == 2 and _error(out)["code"] == "INVALID_ARGUMENT" and "missing.txt" in _error(out)["message"]
    code, out, _ = run(capsys, "env", "--format", "json", "--server", dead_address(), "--retries", "0")
    assert code == 3 and _error(out)["code"] == "UNAVAILABLE"
    code, out, _ = run(capsys, "build", "--format", "json", "--server", dead_address(), "--retries", "0",
                       "--index-url", index.url, "requests")
    assert code == 3 and _error(out)["code"] == "UNAVAILABLE"


def test_text_format_prints_nothing_on_stdout_on_failure(capsys, index):
    code, out, _ = run(capsys, "resolve", "--index-url", index.url, "left>=>1")
    assert code == 2 and out == ""


# ------------------------------------------------------------------------------------------ messages


def test_status_names_only_with_verbose_in_embedded_mode(capsys, index):
    code, _, err = run(capsys, "resolve", "--index-url", index.url, *LINUX, "left", "right")
    assert code == 1 and err.startswith("error: no solution") and "FAILED_PRECONDITION" not in err
    code, _, err = run(capsys, "resolve", "-v", "--index-url", index.url, *LINUX, "left", "right")
    assert code == 1 and "error (FAILED_PRECONDITION, NO_SOLUTION):" in err


def test_colour_follows_the_terminal_and_no_color_force_color():
    class Tty:
        def isatty(self) -> bool:
            return True

    class Pipe:
        def isatty(self) -> bool:
            return False

    assert use_colour(Tty(), {}) and not use_colour(Pipe(), {})
    assert not use_colour(Tty(), {"NO_COLOR": "1"})
    assert use_colour(Pipe(), {"FORCE_COLOR": "1"}) and not use_colour(Pipe(), {"FORCE_COLOR": "0"})
    assert not use_colour(Tty(), {"NO_COLOR": "1", "FORCE_COLOR": "1"})  # NO_COLOR wins
    assert use_colour(Tty(), {"NO_COLOR": ""})  # empty: not set (no-color.org)


def test_force_color_colours_the_error_and_no_color_does_not(capsys, index, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    _, _, err = run(capsys, "resolve", "--index-url", index.url, "left>=>1")
    assert "\x1b[" in err
    monkeypatch.setenv("NO_COLOR", "1")
    _, _, err = run(capsys, "resolve", "--index-url", index.url, "left>=>1")
    assert "\x1b[" not in err


@given(st.integers(min_value=0, max_value=10_000))
def test_plural(count):
    assert plural(count, "pin") == (f"{count} pin" if count == 1 else f"{count} pins")


def test_one_pin_is_one_pin(capsys, index):
    code, out, err = run(capsys, "resolve", "--index-url", index.url, *LINUX, "urllib3")
    assert code == 0, err
    assert "# 1 pin," in out


# ------------------------------------------------------------------------------------------ options


def test_version(capsys):
    from importlib.metadata import version

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"venvsmith {version('venvsmith')}"


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_and_quiet_before_or_after_the_command(capsys, index, where):
    def argv(flag: str) -> list[str]:
        tail = ["resolve", "--index-url", index.url, *LINUX, "requests", "--no-cache"]
        return [flag, *tail] if where == "before" else [*tail, flag]

    code, out, err = run(capsys, *argv("-v"))
    assert code == 0, err
    assert "requests" in err and "ms" in err  # index requests and timing per phase on stderr
    plain_code, plain_out, plain_err = run(capsys, *argv("-q"))
    assert plain_code == 0 and "requests==2.0" in plain_out and plain_err == ""
    for command in (["env"], ["config"], ["verify", "x.toml"], ["build", "x"], ["venv", "d", "x"],
                    ["fetch", "r", "d"], ["serve", "resolver"]):
        parser_help = subprocess.run(cli(*command, "--help"), capture_output=True, text=True, timeout=60)
        assert "-v, --verbose" in parser_help.stdout and "-q, --quiet" in parser_help.stdout, command


# ------------------------------------------------------------------------------------------ bad requirements


@pytest.mark.parametrize(("text", "expected", "column"), [
    ("foo>=>1", "no such operator '>=>' at column 4", 3),
    ("foo>=1,<>2", "no such operator '<>' at column 8", 7),
    ("foo ==", "operator '==' at column 5 needs a version", 4),
    ("foo[bar", "at column 8", 7),
])
def test_a_bad_requirement_points_at_its_column(capsys, index, text, expected, column):
    code, out, err = run(capsys, "resolve", "--index-url", index.url, text)
    assert code == 2 and out == ""
    assert expected in err, err
    lines = err.splitlines()
    shown = lines.index(f"    {text}")
    assert lines[shown + 1] == " " * (4 + column) + "^"  # the caret under the offending column


@pytest.mark.parametrize("text", ["git+https://127.0.0.1:9/repo.git", "https://127.0.0.1:9/foo-1.0-py3-none-any.whl"])
def test_a_bare_url_says_name_at_url(capsys, index, text):
    code, _, err = run(capsys, "resolve", "--index-url", index.url, text)
    assert code == 2 and f"'NAME @ {text}'" in err


def test_resolve_without_requirements_says_so(capsys, index):
    code, out, err = run(capsys, "resolve", "--index-url", index.url)
    assert code == 2 and out == ""
    assert "no requirements given" in err and "''" not in err


# ------------------------------------------------------------------------------------------ hints


@pytest.fixture(scope="module")
def second_index(tmp_path_factory) -> Iterator[IndexServer]:
    """Another index that also has urllib3, in a version the first one lacks."""
    b = IndexBuilder(tmp_path_factory.mktemp("exits-second"))
    b.add("urllib3", "2.5")
    with IndexServer(b) as server:
        yield server


def test_a_typo_gets_the_close_name_and_no_first_index_hint(capsys, index, second_index):
    for url in (index.url, index.builder.simple_url()):  # HTTP (root page) and a file:// tree (its directories)
        code, out, err = run(capsys, "resolve", "--index-url", url, "--extra-index-url", second_index.url, *LINUX,
                             "reqeusts")
        assert code == 1 and out == ""
        assert "did you mean `requests`?" in err, err
        assert "first-index" not in err  # every index was asked for reqeusts: that hint does not apply


def test_the_first_index_hint_only_when_first_index_hid_a_version(capsys, index, second_index):
    # urllib3 is on the extra index (asked first) in 2.5 only, and on the default index in 1.0: `right` needs <2
    code, _, err = run(capsys, "resolve", "--index-url", index.url, "--extra-index-url", second_index.url, *LINUX,
                       "right")
    assert code == 1
    assert "hint: with the first-index strategy" in err
    assert "did you mean" not in err
    code, out, err = run(capsys, "resolve", "--index-url", index.url, "--extra-index-url", second_index.url, *LINUX,
                         "--index-strategy", "unsafe-best-match", "right")
    assert code == 0, err


def test_no_hint_without_a_close_name(capsys, index):
    code, _, err = run(capsys, "resolve", "--index-url", index.url, *LINUX, "zzzzqqqq")
    assert code == 1 and "did you mean" not in err and "hint:" not in err


# ------------------------------------------------------------------------------------------ serve


@pytest.mark.parametrize("argv", [
    ["serve", "resolver", "--port", "{port}"],
    ["serve", "resolver", "--port", "0", "--metrics-port", "{port}"],
    ["serve", "builder", "--port", "0", "--http-port", "{port}", "--sandbox", "none"],
])
def test_a_port_in_use_is_one_line_and_exit_2(tmp_path, argv):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(cli(*(a.format(port=port) for a in argv), "--host", "127.0.0.1"),
                              env=hermetic_env(tmp_path / "home"), capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "already in use" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "listening" not in done.stdout


def test_an_unreadable_config_file_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run(cli("serve", "resolver", "--port", "0", "--config", str(tmp_path / "missing.toml")),
                          env=hermetic_env(tmp_path / "home"), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "missing.toml" in done.stderr


def test_a_target_interpreter_this_host_lacks_is_one_line_and_exit_2(capsys, index, tmp_path):
    """A venv for a Python version no interpreter here has: one line naming it, no traceback, exit 2."""
    code, out, err = run(capsys, "venv", str(tmp_path / "env"), "--index-url", index.url, "--python-version",
                         "3.4", "requests")
    assert code == 2 and out == "", err
    assert "3.4" in err and "interpreter" in err and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error")]  # the rest is progress
    assert len(errors) == 1 and "3.4" in errors[0], err


def test_a_venv_whose_base_interpreter_this_host_lacks_is_no_interpreter():
    from venvsmith.clients.builder import check_base_interpreter
    from venvsmith.core.resolution import CallError
    from venvsmith.v1 import builder_pb2

    wanted = builder_pb2.BaseInterpreter(path="/nonexistent/python3.11", version="3.11.7",
                                         implementation="cpython")
    with pytest.raises(CallError) as raised:
        check_base_interpreter(wanted)
    assert raised.value.reason == "NO_INTERPRETER" and "/nonexistent/python3.11" in raised.value.message
    assert exit_code(raised.value.status, raised.value.reason) == 2
