"""The node cache (venvsmith.clients.node_cache) driven directly, with fill callables of the test's own: one fill
for concurrent placements (processes), a killed filler's lock and staging directory, damage found and refilled,
eviction by size that spares entries layered venvs depend on, bad input. The CLI with a real builder server is in
test_node_cache.py."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from builder_service.trees import remove_sealed
from venvsmith.cli import main
from venvsmith.cli import node_cache as cli_node_cache
from venvsmith.clients import node_cache
from venvsmith.clients.node_cache import NodeCache, NodeCacheError

SHA_A, SHA_B, SHA_C = ("a" * 64, "b" * 64, "c" * 64)


def fake_fill(tree: Path, payload: int = 1000) -> None:
    """A small venv tree: pyvenv.cfg, bin/python, a package of ``payload`` bytes in site-packages."""
    site = tree / "lib" / "python3.11" / "site-packages" / "pkg"
    site.mkdir(parents=True)
    (site / "__init__.py").write_bytes(b"#" * payload)
    (tree / "bin").mkdir()
    os.symlink(sys.executable, tree / "bin" / "python")
    (tree / "pyvenv.cfg").write_text("home = /usr/bin\n")


def never(tree: Path) -> None:
    raise AssertionError("filled although the node has the environment")


def _place_in_child(root: str, dest: str, marks: str, barrier) -> None:
    """A process placing SHA_A: its fill leaves a mark (one per fill) and takes a while."""
    def fill(tree: Path) -> None:
        Path(marks, str(os.getpid())).write_text("filled")
        time.sleep(0.5)  # holds the exclusive lock while the others wait
        fake_fill(tree)

    barrier.wait()
    NodeCache(Path(root)).open().place(SHA_A, Path(dest), fill, mode="hardlink")


def test_concurrent_placements_in_processes_fill_once(tmp_path):
    root, marks = tmp_path / "node", tmp_path / "marks"
    marks.mkdir()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    procs = [context.Process(target=_place_in_child, args=(str(root), str(tmp_path / f"venv{i}"), str(marks),
                                                           barrier)) for i in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    assert len(list(marks.iterdir())) == 1  # one fill, four venvs
    for i in range(4):
        placed = tmp_path / f"venv{i}" / "lib" / "python3.11" / "site-packages" / "pkg" / "__init__.py"
        assert os.path.samefile(placed, root / "envs" / SHA_A / "tree" / "lib" / "python3.11" / "site-packages" /
                                "pkg" / "__init__.py")
    assert not list((root / "staging").iterdir())


_KILLED_FILLER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from venvsmith.clients.node_cache import NodeCache

    def fill(tree):
        tree.mkdir()
        (tree / "half-written").write_bytes(b"x" * 100)
        print("filling", flush=True)
        time.sleep(600)

    NodeCache(Path(sys.argv[1])).open().place(sys.argv[2], Path(sys.argv[3]), fill)
""")


def test_a_killed_filler_leaves_a_released_lock_and_staging_the_next_filler_removes(tmp_path):
    root = tmp_path / "node"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_FILLER, str(root), SHA_A, str(tmp_path / "first")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "filling"
        assert (root / "staging" / SHA_A / "tree" / "half-written").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    cache = NodeCache(root, lock_timeout=30).open()
    os.mkdir(root / "staging" / SHA_B)  # another filler's, alive: its lock is held
    import fcntl

    with node_cache._flock(root / "locks" / f"{SHA_B}.lock", fcntl.LOCK_EX, 1):
        assert cache.clean_staging() == 1  # what `node-cache prune` does: only the dead filler's
    assert sorted(p.name for p in (root / "staging").iterdir()) == [SHA_B]
    os.rmdir(root / "staging" / SHA_B)
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_FILLER, str(root), SHA_A, str(tmp_path / "first")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "filling"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    placement = cache.place(SHA_A, tmp_path / "second", fake_fill)
    assert placement.filled
    assert not (root / "envs" / SHA_A / "tree" / "half-written").exists()
    assert not list((root / "staging").iterdir())


def test_an_entry_is_read_only_and_its_damage_is_found_and_refilled(tmp_path, capsys):
    cache = NodeCache(tmp_path / "node").open()
    first = cache.place(SHA_A, tmp_path / "v1", fake_fill, mode="hardlink")
    assert first.filled and first.how == "hardlink"
    module = cache.entry(SHA_A).tree / "lib" / "python3.11" / "site-packages" / "pkg" / "__init__.py"
    assert not os.stat(module).st_mode & 0o222 and not os.stat(module.parent).st_mode & 0o222
    assert not cache.place(SHA_A, tmp_path / "v2", never, mode="hardlink").filled
    linked = tmp_path / "v2" / "lib" / "python3.11" / "site-packages" / "pkg" / "__init__.py"
    if os.geteuid() != 0:  # an in-place edit of a hard-linked venv fails...
        with pytest.raises(PermissionError):
            linked.open("ab")
    os.chmod(linked, 0o644)  # ...unless one insists (root needs not even this): the node's copy is changed
    with linked.open("ab") as f:
        f.write(b"changed = True\n")
    notes: list[str] = []
    third = cache.place(SHA_A, tmp_path / "v3", fake_fill, mode="hardlink", note=notes.append)
    assert third.filled and third.refilled
    assert notes and "damaged" in notes[0] and "__init__.py" in notes[0]
    placed = tmp_path / "v3" / "lib" / "python3.11" / "site-packages" / "pkg" / "__init__.py"
    assert placed.read_bytes() == b"#" * 1000
    assert cache.entry(SHA_A).damage() is None
    # a file removed from the entry: found as well (layered placements check the manifest too)
    os.chmod(module.parent, 0o755)
    (cache.entry(SHA_A).tree / "pyvenv.cfg").unlink()
    fourth = cache.place(SHA_A, tmp_path / "v4", fake_fill, mode="layered", note=notes.append)
    assert fourth.refilled and "pyvenv.cfg was removed" in notes[-1]


def test_bytecode_written_into_an_entry_is_not_damage(tmp_path):
    cache = NodeCache(tmp_path / "node").open()
    cache.place(SHA_A, tmp_path / "v1", fake_fill, mode="layered")
    pycache = cache.entry(SHA_A).tree / "lib" / "python3.11" / "site-packages" / "pkg" / "__pycache__"
    os.chmod(pycache.parent, 0o755)
    pycache.mkdir()
    (pycache / "__init__.cpython-311.pyc").write_bytes(b"pyc")
    assert cache.entry(SHA_A).damage() is None
    (pycache / "notes.txt").write_bytes(b"other")
    assert "notes.txt was added" in (cache.entry(SHA_A).damage() or "")


def _age(cache: NodeCache, sha: str, seconds_ago: float) -> None:
    when = time.time() - seconds_ago
    os.utime(cache.entry(sha).stamp, (when, when))


def test_eviction_removes_the_least_recently_used_unused_entry_and_spares_one_in_use(tmp_path):
    cache = NodeCache(tmp_path / "node").open()
    layered = tmp_path / "layered"
    cache.place(SHA_A, layered, lambda t: fake_fill(t, 4000), mode="layered")  # oldest, but in use
    cache.place(SHA_B, tmp_path / "linked", lambda t: fake_fill(t, 4000), mode="hardlink")  # links: not a user
    cache.place(SHA_C, tmp_path / "newest", lambda t: fake_fill(t, 4000), mode="hardlink")
    _age(cache, SHA_A, 300)
    _age(cache, SHA_B, 200)
    _age(cache, SHA_C, 100)
    assert [e.sha256 for e in cache.entries()] == [SHA_A, SHA_B, SHA_C]
    assert cache.users(cache.entry(SHA_A)) == [layered]
    assert cache.evict(9000) == [SHA_B]  # 3 x ~4 KiB down to 9000 bytes: A is in use, B goes
    assert not cache.entry(SHA_B).path.exists() and cache.entry(SHA_A).path.exists()
    linked = tmp_path / "linked" / "lib" / "python3.11" / "site-packages" / "pkg" / "__init__.py"
    assert linked.read_bytes() == b"#" * 4000  # a hard-linked venv keeps its files
    import shutil

    shutil.rmtree(layered)  # the layered venv is gone: its entry may go now
    assert cache.evict(5000) == [SHA_A]
    assert not (tmp_path / "node" / "users" / SHA_A).exists()


def test_a_fill_evicts_down_to_the_limit_but_not_the_entry_it_filled(tmp_path):
    cache = NodeCache(tmp_path / "node").open()
    cache.place(SHA_A, tmp_path / "a", lambda t: fake_fill(t, 4000), mode="hardlink")
    _age(cache, SHA_A, 100)
    placed = cache.place(SHA_B, tmp_path / "b", lambda t: fake_fill(t, 4000), mode="hardlink", max_size=1000)
    assert placed.evicted == (SHA_A,)
    assert cache.entry(SHA_B).path.exists()


def test_a_locked_entry_is_not_evicted(tmp_path):
    cache = NodeCache(tmp_path / "node").open()
    cache.place(SHA_A, tmp_path / "a", fake_fill, mode="hardlink")
    import fcntl

    with node_cache._flock(tmp_path / "node" / "locks" / f"{SHA_A}.lock", fcntl.LOCK_SH, 1):  # being placed
        assert cache.evict(0) == []
    assert cache.evict(0) == [SHA_A]


def test_a_lock_held_too_long_is_bad_input_not_a_hang(tmp_path):
    import fcntl

    cache = NodeCache(tmp_path / "node", lock_timeout=0.2).open()
    with node_cache._flock(tmp_path / "node" / "locks" / f"{SHA_A}.lock", fcntl.LOCK_EX, 1), \
            pytest.raises(NodeCacheError, match="still being filled"):
        cache.place(SHA_A, tmp_path / "a", never)


def test_bad_input(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(NodeCacheError, match="cannot be used"):
        NodeCache(blocker / "node").open()
    cache = NodeCache(tmp_path / "node").open()
    with pytest.raises(NodeCacheError, match="not a sha256"):
        cache.place("../../etc", tmp_path / "v", never)
    with pytest.raises(NodeCacheError, match="unknown node cache mode"):
        cache.place(SHA_A, tmp_path / "v", never, mode="copy")
    with pytest.raises(NodeCacheError, match="made no tree"):
        cache.place(SHA_A, tmp_path / "v", lambda tree: None)
    assert not cache.entry(SHA_A).path.exists() and not list((tmp_path / "node" / "staging").iterdir())


def test_the_cli_keeps_the_modes_and_default_of_the_client(tmp_path):
    assert cli_node_cache.MODES == node_cache.MODES
    assert cli_node_cache.DEFAULT_MAX_SIZE == node_cache.DEFAULT_MAX_SIZE


def test_node_cache_list_and_prune_commands(tmp_path, capsys):
    cache = NodeCache(tmp_path / "node").open()
    cache.place(SHA_A, tmp_path / "layered", fake_fill, mode="layered")
    cache.place(SHA_B, tmp_path / "linked", fake_fill, mode="hardlink")
    assert main(["node-cache", "list", str(tmp_path / "node")]) == 0
    out = capsys.readouterr().out
    assert SHA_A in out and SHA_B in out and "1 layered venv(s)" in out and "# 2 environment(s)" in out
    assert main(["node-cache", "prune", str(tmp_path / "node"), "--max-size", "0"]) == 0
    out = capsys.readouterr().out
    assert "evicted 1 environment(s)" in out and SHA_B in out
    assert [e.sha256 for e in cache.entries()] == [SHA_A]
    assert main(["node-cache", "prune", str(tmp_path / "node"), "--max-size", "lots"]) == 2
    assert "not a size" in capsys.readouterr().err
    assert main(["node-cache", "list", str(tmp_path / "elsewhere")]) == 2
    assert main(["node-cache", "prune", str(tmp_path / "node"), "--every", "0"]) == 2


def test_an_in_place_edit_of_a_hard_linked_venv_fails_for_a_user_who_is_not_root(tmp_path):
    """As another user than root (dropped to nobody when the tests run as root): `echo x >> file` fails."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="node-cache-", dir="/tmp"))  # traversable by nobody, unlike tmp_path
    try:
        os.chmod(base, 0o755)
        cache = NodeCache(base / "node").open()
        cache.place(SHA_A, base / "venv", fake_fill, mode="hardlink")
        linked = base / "venv" / "lib" / "python3.11" / "site-packages" / "pkg" / "__init__.py"
        as_user = None
        if os.geteuid() == 0:
            def as_user() -> None:
                os.setgid(65534)
                os.setuid(65534)
        proc = subprocess.run(["/bin/sh", "-c", 'echo x >> "$1"', "sh", str(linked)], preexec_fn=as_user,
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode != 0 and "ermission denied" in proc.stderr, proc.stderr
        assert linked.read_bytes() == b"#" * 1000 and cache.entry(SHA_A).damage() is None
    finally:
        remove_sealed(base)
        shutil.rmtree(base, ignore_errors=True)


def test_a_fill_that_fails_leaves_no_partial_environment(tmp_path):
    import errno

    def full_disk(tree: Path) -> None:
        fake_fill(tree)
        raise OSError(errno.ENOSPC, "No space left on device")

    cache = NodeCache(tmp_path / "node").open()
    with pytest.raises(OSError, match="No space left"):
        cache.place(SHA_A, tmp_path / "v", full_disk)
    assert not cache.entry(SHA_A).path.exists() and not list((tmp_path / "node" / "staging").iterdir())
    assert cache.place(SHA_A, tmp_path / "v", fake_fill).filled
