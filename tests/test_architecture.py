"""The layering rules of docs/architecture.md, checked on the package's own source.

Layers, low to high: base modules (artifact, errors, preprocessing, photos, ...), models,
export, runtimes, harness / apps, commands. A module imports only its own layer or lower;
no module outside `models/` names a model family in code (docstrings may).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mfdeploy.models import families

PACKAGE = Path(__file__).resolve().parents[1] / "mfdeploy"
LAYERS = {"models": 1, "export": 2, "runtimes": 3, "harness": 4, "apps": 4, "commands": 5}
TOP_LEVEL = {"cli": 5, "__main__": 5}
FAMILY_FREE = ("export", "runtimes", "harness", "apps", "commands")


def layer_of(module: str) -> int:
    parts = module.split(".")
    if parts[0] != "mfdeploy" or len(parts) == 1:
        return 0
    return LAYERS.get(parts[1], TOP_LEVEL.get(parts[1], 0))


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imports(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = module.split(".")[: -node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{a.name}") for a in node.names]
    return [(line, name) for line, name in found if name.startswith("mfdeploy")]


def upward_imports(path: Path) -> list[str]:
    module = module_name(path)
    own = layer_of(module)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{module}:{line} imports {name}"
        for line, name in imports(tree, module)
        if layer_of(name) > own
    ]


def test_no_module_imports_a_higher_layer():
    offenders = [line for path in sources() for line in upward_imports(path)]
    assert not offenders, "\n".join(offenders)


def test_the_import_check_sees_an_upward_import(tmp_path):
    """The check itself: a runtime importing the harness is reported."""
    fake = PACKAGE / "runtimes" / "_probe_upward.py"
    tree = ast.parse("from mfdeploy.harness import verify\nimport mfdeploy.errors\n")
    assert [n for _, n in imports(tree, module_name(fake)) if layer_of(n) > 3] == [
        "mfdeploy.harness",
        "mfdeploy.harness.verify",
    ]


def family_words() -> set[str]:
    words = set()
    for entry in families().values():
        words.add(entry.name.lower())
        words.add(entry.title.lower().replace("-", ""))
        words.add(entry.name.replace("_", "").lower())
        words.update(entry.model_name(v).lower() for v in entry.variants)
    return words


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def names_in_code(source: str) -> list[tuple[int, str]]:
    """(line, text) of every identifier and string literal that is not a docstring."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            out.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            out.append((node.lineno, node.attr))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            out.append((node.lineno, node.name))
        elif isinstance(node, ast.arg):
            out.append((node.lineno, node.arg))
    return out


def family_mentions(source: str) -> list[str]:
    words = family_words()
    found = []
    for line, text in names_in_code(source):
        if "/" in text:  # a file path of a demo app's project, not a model
            continue
        flat = text.lower().replace("-", "_")
        if any(w in flat or w in flat.replace("_", "") for w in words):
            found.append(f"{line}: {text[:60]!r}")
    return found


@pytest.mark.parametrize("layer", FAMILY_FREE)
def test_no_family_named_outside_models(layer):
    offenders = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        offenders += [f"{path.relative_to(PACKAGE)}:{m}" for m in family_mentions(path.read_text())]
    assert not offenders, "\n".join(offenders)


def test_the_family_check_sees_a_family_in_code_not_in_docstrings():
    code = '"""Mentions mobile_former in a docstring."""\nx = "mobile_former"\n'
    assert family_mentions(code) == ["2: 'mobile_former'"]
    assert family_mentions('"""efficientnet_lite0 is fine here."""\n') == []
