"""The package boundaries of docs/architecture.md ("Packages and what they may import") hold in the code: the
table there is read, and every `egress_xds` import of every module is checked against it. A new dependency
between units is then a change to the document, made on purpose and visible in review."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGE = REPOSITORY / "egress_xds"
ARCHITECTURE = REPOSITORY / "docs" / "architecture.md"
ANYTHING = "anything"


def unit_of(module: str) -> str:
    """`egress_xds.xds.stream` -> `xds`; `egress_xds.redact` -> `redact`."""
    return module.split(".")[1]


def allowed_imports() -> dict[str, set[str] | None]:
    """The table: unit -> units it may import (None: anything)."""
    text = ARCHITECTURE.read_text()
    section = text.split("## Packages and what they may import", 1)[1].split("\n## ", 1)[0]
    table: dict[str, set[str] | None] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        allowed = None if cells[2] == ANYTHING else set(re.findall(r"`(\w+)`", cells[2]))
        for name in re.findall(r"`(\w+)(?:\.py|/)`", cells[0]):
            table[name] = allowed
    return table


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(unit_of(name) for name in names if name.startswith("egress_xds."))
    return found


def modules() -> list[Path]:
    return [path for path in sorted(PACKAGE.rglob("*.py")) if "_pb2" not in path.name]


def test_every_unit_is_in_the_table() -> None:
    table = allowed_imports()
    units = {unit_of(".".join(path.relative_to(REPOSITORY).with_suffix("").parts)) for path in modules()}
    units.discard("__init__")
    assert units - set(table) == set(), "add these to docs/architecture.md"
    assert set(table) - units == set(), "docs/architecture.md names units that do not exist"


def test_no_module_imports_outside_its_row() -> None:
    table = allowed_imports()
    violations = []
    for path in modules():
        relative = path.relative_to(REPOSITORY)
        unit = unit_of(".".join(relative.with_suffix("").parts))
        allowed = table.get(unit, set())
        if allowed is None:
            continue
        for imported in sorted(imports_of(path) - allowed - {unit}):
            violations.append(f"{relative} imports egress_xds.{imported}")
    assert violations == [], "\n".join(violations)


def test_the_table_is_read() -> None:
    """Guards the reader: a table it could not parse would make every check above vacuous."""
    table = allowed_imports()
    assert table["translate"] == {"defaults", "policy", "type_urls"}
    assert table["cli"] is None and table["redact"] == set()
