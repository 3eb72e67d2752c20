"""``--trusted-key`` where the answer carries no signature (``env``, ``fetch``) is a usage error, never ignored."""

from __future__ import annotations

import pytest

from tests.signing.keys import write_keypair
from venvsmith.cli import main


@pytest.mark.parametrize("argv", [
    ["env", "--server", "127.0.0.1:9"],
    ["env"],
    ["fetch", "sha256:" + "0" * 64 + "/1", "out", "--server", "127.0.0.1:9"],
])
def test_trusted_key_on_a_command_without_signed_answers_is_exit_2(tmp_path, capsys, argv):
    _, public = write_keypair(tmp_path, "k")
    assert main([*argv, "--trusted-key", str(public)]) == 2
    err = capsys.readouterr().err
    assert "--trusted-key" in err and "not signed" in err, err


def test_env_without_trusted_key_still_works(capsys):
    assert main(["env", "--format", "json"]) == 0
    assert '"tags"' in capsys.readouterr().out
