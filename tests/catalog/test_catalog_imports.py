"""Who imports whom: catalog is pure; bodega never imports handlers, nor handlers bodega."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imported_packages(package: str) -> set[tuple[str, str]]:
    """(file, top-level package) for every import statement under ``package``,
    including imports inside functions."""
    found: set[tuple[str, str]] = set()
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found.update((str(path.relative_to(ROOT)), n.split(".")[0]) for n in names)
    return found


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("bodega", {"handlers"}),
        ("handlers", {"bodega"}),
        ("ipc", {"bodega", "handlers", "catalog"}),
        ("catalog", {"bodega", "handlers", "ipc"}),
    ],
)
def test_no_import_statement_crosses_the_line(package: str, forbidden: set[str]) -> None:
    crossing = sorted(
        f"{file} imports {top}" for file, top in _imported_packages(package) if top in forbidden
    )
    assert crossing == []


def test_catalog_imports_only_the_standard_library_and_msgspec() -> None:
    code = (
        "import sys, msgspec, msgspec.json, msgspec.structs\n"
        "before = set(sys.modules)  # msgspec and what it needs (typing_extensions)\n"
        "import catalog, catalog.files, catalog.engines, catalog.options, catalog.parsers\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names) - {'catalog', 'msgspec'}))\n"
    )
    assert _run(code) == "[]"
    allowed = set(sys.stdlib_module_names) | {"catalog", "msgspec", "__future__"}
    assert sorted({top for _, top in _imported_packages("catalog")} - allowed) == []


def test_the_http_process_imports_no_handlers_module() -> None:
    code = (
        "import sys, bodega.cli, bodega.app, bodega.registry.registry, bodega.registry.options\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'handlers'))\n"
    )
    assert _run(code) == "[]"
