"""What a tree's manifest records of one regular file (:mod:`builder_service.venv_template`'s ``files.json``):
written where files are made (:mod:`builder_service.archive`) and read where trees are checked, without either
importing the other."""

from __future__ import annotations

import os

__all__ = ["FileStat", "stat_key"]

#: [size, mtime_ns, inode, mode] of a regular file (a list: what files.json holds, compared without conversion).
FileStat = list[int]


def stat_key(st: os.stat_result) -> FileStat:
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode]
