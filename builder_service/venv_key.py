"""The key of a venv archive: everything the packed tree depends on, not only the pins.

A venv's ``pyvenv.cfg`` (``home``) and its ``bin/python`` link name the base interpreter's path, its
``lib/pythonX.Y`` layout and compiled bytecode follow the interpreter's version and ABI, and a venv made with
another build of the "same" Python (rebuilt, upgraded in place) may not run. So the archive is keyed by the
lock key plus the base interpreter (path, version, implementation, identity of its build) plus the options
that change the tree (bytecode, the pip seeded into it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from venvsmith.core.interpreters import BaseInterpreter
from venvsmith.v1 import builder_pb2

_SCHEMA = "venvsmith.venv-key/2"


@dataclass(frozen=True)
class VenvKey:
    """What a venv archive is built from; :meth:`key` names it in the action cache."""

    lock_key: str
    interpreter: BaseInterpreter
    compile_bytecode: bool
    #: sha256 of the pip wheel seeded into the venv, ``""`` for a lean venv.
    seed_sha256: str = ""

    def key(self) -> str:
        doc = {"schema": _SCHEMA, "lock_key": self.lock_key, "interpreter": asdict(self.interpreter),
               "compile_bytecode": self.compile_bytecode, "seed": self.seed_sha256}
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        return f"venv:{digest}"


def interpreter_to_proto(base: BaseInterpreter) -> builder_pb2.BaseInterpreter:
    return builder_pb2.BaseInterpreter(path=base.path, version=base.version, implementation=base.implementation,
                                       identity=base.identity)


def interpreter_from_proto(msg: builder_pb2.BaseInterpreter) -> BaseInterpreter:
    return BaseInterpreter(path=msg.path, version=msg.version, implementation=msg.implementation,
                           identity=msg.identity)
