"""Regenerate the checked-in gRPC stubs under ``venvsmith/v1/`` from ``protos/`` (``make protos``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


def proto_files() -> list[Path]:
    """The .proto sources, sorted so generation is deterministic."""
    return sorted((PROTO_ROOT / "venvsmith" / "v1").glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Generate ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` into ``out_dir``; return the files written."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    return sorted((out_dir / "venvsmith" / "v1").glob("*_pb2*.py*"))


def main() -> int:
    written = generate(ROOT)
    init = ROOT / "venvsmith" / "v1" / "__init__.py"
    if not init.exists():
        init.write_text('"""Generated gRPC stubs (``make protos``); do not edit."""\n')
    for path in written:
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
