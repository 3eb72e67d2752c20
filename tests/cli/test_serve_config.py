"""``serve --config FILE`` (TOML) and ``VENVSMITH_<KEY>``: precedence flag > env > file > default; an unknown key
or a bad value is exit 2 naming the key and where it came from."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.fixtures.builder_server import ResolverProcess, cli, hermetic_env
from venvsmith.cli import build_parser, main
from venvsmith.cli.serve_options import ConfigError, apply_config


@pytest.fixture(autouse=True)
def _no_venvsmith_env(monkeypatch):
    for var in list(os.environ):
        if var.startswith("VENVSMITH_"):
            monkeypatch.delenv(var)


def _args(argv: list[str]):
    parser = build_parser()
    return apply_config(parser, argv, parser.parse_args(argv))


def test_file_then_env_then_flag(tmp_path, monkeypatch):
    config = tmp_path / "serve.toml"
    config.write_text('port = 6000\nmetrics_port = 9100\ngrace_period = 7.5\nlog_format = "json"\nhost = "0.0.0.0"\n')
    args = _args(["serve", "resolver", "--config", str(config)])
    assert (args.port, args.metrics_port, args.grace_period, args.log_format, args.host) == \
        (6000, 9100, 7.5, "json", "0.0.0.0")
    monkeypatch.setenv("VENVSMITH_PORT", "6001")
    monkeypatch.setenv("VENVSMITH_GRACE_PERIOD", "3")
    args = _args(["serve", "resolver", "--config", str(config)])
    assert (args.port, args.grace_period, args.metrics_port) == (6001, 3.0, 9100)
    args = _args(["serve", "resolver", "--config", str(config), "--port", "6002", "--grace-period", "1"])
    assert (args.port, args.grace_period, args.metrics_port) == (6002, 1.0, 9100)


def test_defaults_without_file_or_env():
    args = _args(["serve", "builder"])
    assert (args.port, args.metrics_port, args.grace_period, args.log_format) == (50052, None, 20.0, "text")


@pytest.mark.parametrize(("text", "named"), [
    ('port = 1\nmetrics_prot = 9100\n', "serve.toml:2: key 'metrics_prot': unknown key"),
    ('port = "fifty"\n', "serve.toml:1: key 'port': invalid value 'fifty'"),
    ('grace_period = -1\n', "serve.toml:1: key 'grace_period': must not be negative"),
    ('\n\nlog_format = "yaml"\n', "serve.toml:3: key 'log_format': 'yaml' is not one of text, json"),
    ('port = 1.5\n', "serve.toml:1: key 'port': expected an integer"),
    ('port = [1]\n', "serve.toml:1: key 'port': expected a int"),
    ('port = \n', "serve.toml: not valid TOML"),
])
def test_bad_file_is_exit_2_naming_the_key(tmp_path, capsys, text, named):
    config = tmp_path / "serve.toml"
    config.write_text(text)
    assert main(["serve", "resolver", "--config", str(config)]) == 2
    assert named in capsys.readouterr().err


def test_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("VENVSMITH_METRICS_PORT", "ninety")
    with pytest.raises(ConfigError, match="environment variable VENVSMITH_METRICS_PORT: invalid value 'ninety'"):
        _args(["serve", "resolver"])


@pytest.mark.parametrize(("argv", "named"), [
    (["--metrics-port", "70000"], "--metrics-port (metrics_port): 70000 is not a port"),
    (["--port", "-1"], "--port (port): -1 is not a port"),
    (["--grace-period", "-2"], "--grace-period (grace_period): -2.0 is not a number of seconds"),
    (["--grace-period", "nan"], "--grace-period (grace_period): nan is not a number of seconds"),
    (["--cache", "memcached://h:1"], "the cache is sqlite:///DIRECTORY, redis://HOST:PORT/N or rediss://"),
])
def test_bad_flag_values_are_exit_2_naming_them(capsys, argv, named):
    assert main(["serve", "resolver", *argv]) == 2
    assert named in capsys.readouterr().err


def test_a_bad_cache_variable_names_it(monkeypatch):
    monkeypatch.setenv("VENVSMITH_CACHE", "redis://h:1/zero")
    with pytest.raises(ConfigError, match="environment variable VENVSMITH_CACHE: .*the database is a number"):
        _args(["serve", "resolver"])


def test_missing_config_file(tmp_path, capsys):
    assert main(["serve", "resolver", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: cannot read it" in capsys.readouterr().err


@pytest.mark.slow
def test_a_server_reads_its_config_file_and_a_bad_key_stops_it(tmp_path):
    home = tmp_path / "r"
    config = tmp_path / "serve.toml"
    config.write_text(f'home = "{tmp_path / "state"}"\nlog_format = "json"\n')
    with ResolverProcess(home, "--config", str(config)) as server:
        assert server.alive()
    lines = server.log().splitlines()
    assert lines and all(line.startswith("{") for line in lines), lines  # the file's log_format
    # The environment's VENVSMITH_HOME (set by the fixture) wins over the file's home.
    assert not (tmp_path / "state").exists() and (home / "resolutions.sqlite3").exists()
    config.write_text("colour = 'blue'\n")
    done = subprocess.run(cli("serve", "resolver", "--port", "0", "--config", str(config)), env=hermetic_env(home),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "serve.toml:1: key 'colour': unknown key" in done.stderr


@pytest.mark.parametrize("flag", [["--store", "oci://127.0.0.1:5000/acme"], ["--store-ca", "/etc/ca.pem"]])
def test_store_on_the_resolvers_command_line_is_exit_2(capsys, flag):
    """The resolver keeps no artifacts: --store given to it is a usage error, never silently ignored."""
    assert main(["serve", "resolver", "--port", "0", *flag]) == 2
    err = capsys.readouterr().err
    assert flag[0] in err and "resolver keeps no artifacts" in err and "serve builder --store" in err


def test_a_store_key_in_a_config_file_shared_with_builders_is_accepted_by_the_resolver(tmp_path):
    """deploy/k8s: one config.toml for both servers; its `store` key is the builders' and the resolver says so."""
    config = tmp_path / "serve.toml"
    config.write_text('store = "oci://127.0.0.1:1/acme"\n')
    args = _args(["serve", "resolver", "--config", str(config)])
    assert args.store == "oci://127.0.0.1:1/acme"
    with ResolverProcess(tmp_path / "home", "--config", str(config)) as server:
        assert "store is a builder setting" in server.log()
