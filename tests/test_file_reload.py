"""ReloadingFiles: read again on change, keep the last good value when a changed file is unusable."""

from __future__ import annotations

import logging
import os

import pytest

from venvsmith.core.file_reload import ReloadingFiles


class Bad(ValueError):
    pass


def _loader(path, calls):
    def load() -> str:
        calls.append(1)
        text = path.read_text()
        if text.startswith("bad"):
            raise Bad(text)
        return text
    return load


def _replace(path, text: str) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.replace(tmp, path)  # a new inode: a change whatever the clock's resolution


def test_reads_again_only_when_the_file_changes(tmp_path):
    path, calls = tmp_path / "f", []
    path.write_text("one")
    files = ReloadingFiles([path], _loader(path, calls), "test file", errors=(Bad,))
    assert files.current() == "one" and files.current() == "one" and len(calls) == 1
    _replace(path, "two")
    assert files.current() == "two" and len(calls) == 2


def test_an_unusable_change_keeps_the_value_logs_once_and_is_retried_on_the_next_change(tmp_path, caplog):
    path, calls = tmp_path / "f", []
    path.write_text("good")
    seen: list = []
    files = ReloadingFiles([path], _loader(path, calls), "test file", errors=(Bad,),
                           changed=lambda old, new: seen.append((old, new)))
    _replace(path, "bad half-written")
    with caplog.at_level(logging.ERROR):
        assert [files.current() for _ in range(3)] == ["good"] * 3
    assert len(calls) == 2  # the same bad file is not read (and logged) on every call
    assert sum("cannot be used" in r.getMessage() for r in caplog.records) == 1
    _replace(path, "fixed")
    assert files.current() == "fixed" and seen == [("good", "fixed")]


def test_a_removed_file_keeps_the_value_and_the_first_read_must_succeed(tmp_path):
    path, calls = tmp_path / "f", []
    path.write_text("kept")
    files = ReloadingFiles([path], _loader(path, calls), "test file", errors=(Bad, OSError))
    path.unlink()
    assert files.current() == "kept"
    path.write_text("bad")
    with pytest.raises(Bad):
        ReloadingFiles([path], _loader(path, []), "test file", errors=(Bad,))


def test_interval_limits_how_often_the_files_are_looked_at(tmp_path):
    path, calls = tmp_path / "f", []
    path.write_text("one")
    files = ReloadingFiles([path], _loader(path, calls), "test file", errors=(Bad,), interval=3600)
    _replace(path, "two")
    assert files.current() == "one"  # not looked at again within the hour
