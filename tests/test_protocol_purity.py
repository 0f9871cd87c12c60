"""protocol/ is pure: it imports only the standard library and msgpack."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PROTOCOL = Path(__file__).resolve().parent.parent / "protocol"


def test_protocol_imports_only_stdlib_and_msgpack() -> None:
    allowed = set(sys.stdlib_module_names) | {"msgpack", "__future__"}
    for path in PROTOCOL.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: inside protocol/
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
