"""The shape of the package (issue #14): small modules with an ``__all__`` that tells the truth.

* every module of ``authsvc`` declares ``__all__`` (Alembic revisions aside);
* every name another module imports from an ``authsvc`` module is in that module's
  ``__all__`` — a private helper used elsewhere is a public name in disguise;
* no module of ``authsvc`` is over 400 lines, none of ``scripts/`` over 600;
* the base install (``authsvc.verifier`` and what it imports) needs no server package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "authsvc"
MAX_PACKAGE_LINES = 400
MAX_SCRIPT_LINES = 600


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts and path.name != "__init__.py":  # loaded by Alembic, by path
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _declared_all(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                assert node.value is not None
                return {ast.literal_eval(element) for element in node.value.elts}  # type: ignore[attr-defined]
    return None


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_declares_its_public_names(module: str) -> None:
    assert _declared_all(_tree(MODULES[module])) is not None, f"{module} has no __all__"


def test_what_modules_import_from_each_other_is_public() -> None:
    declared = {name: _declared_all(_tree(path)) or set() for name, path in MODULES.items()}
    sources = [*MODULES.values(), *sorted((ROOT / "scripts").rglob("*.py"))]
    problems = []
    for path in sources:
        for node in ast.walk(_tree(path)):
            if not isinstance(node, ast.ImportFrom) or not node.module or node.module not in MODULES:
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in MODULES or alias.name in declared[node.module]:
                    continue
                problems.append(f"{path.relative_to(ROOT)} imports {alias.name} from {node.module}")
    assert problems == [], "\n".join(problems)


def test_modules_stay_small() -> None:
    long = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for path, limit in [
            *((p, MAX_PACKAGE_LINES) for p in PACKAGE.rglob("*.py")),
            *((p, MAX_SCRIPT_LINES) for p in (ROOT / "scripts").rglob("*.py")),
        ]
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > limit
    ]
    assert long == [], "\n".join(long)


def test_the_verifier_needs_no_server_package() -> None:
    """Import the verifier with the server's packages hidden: the base install must do."""
    blocked = ["fastapi", "starlette", "sqlalchemy", "pydantic", "pydantic_settings", "uvicorn", "typer"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        "from authsvc.verifier import InvalidToken, SyncVerifier, Verifier\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
