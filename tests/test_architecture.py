"""The layering of docs/architecture.md, checked on the source: imports go down, never up,
no command imports another, and no private function or class crosses a module boundary."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"
CORE = {
    "_checks",
    "_hugepages",
    "_parallel",
    "types",
    "counts",
    "metrics",
    "losses",
    "theory",
    "distributed",
}
#: what each layer must not import (by the second part of the module name)
FORBIDDEN = {
    "data": {"train", "experiment", "commands", "cli", "integrations"},
    "train": {"experiment", "commands", "cli", "integrations"},
    "experiment": {"commands", "cli"},
    "integrations": {"train", "experiment", "cli"},
}
#: the theory's figures draw through the one plotting helper (matplotlib, outside the core)
ALLOWED = {("metricseg.theory.plots", "metricseg.plotting")}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted((SRC / "metricseg").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text())
    return out


MODULES = _modules()


def _imports(tree: ast.Module) -> list[tuple[str, str | None]]:
    """``(module, name)`` for every ``from metricseg... import name`` and ``import metricseg...``."""
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("metricseg"):
            out += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names if a.name.startswith("metricseg")]
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_layers(module):
    for target, name in _imports(MODULES[module]):
        full = f"{target}.{name}" if name and f"{target}.{name}" in MODULES else target
        if (module, full) in ALLOWED or _layer(full) == "":
            continue
        layer = _layer(module)
        if layer in CORE:
            assert _layer(full) in CORE, f"core module {module} imports {full}"
        assert _layer(full) not in FORBIDDEN.get(layer, set()), f"{module} imports {full} upward"
        if layer == "commands" and not module.endswith("_common"):
            assert _layer(full) != "commands" or full.endswith(("_common", "commands")), (
                f"command {module} imports another command, {full}"
            )


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_function_or_class_crosses_a_module(module):
    for target, name in _imports(MODULES[module]):
        if not name or not name.startswith("_") or name.startswith("__"):
            continue
        is_module = f"{target}.{name}" in MODULES  # a package-private module is fine
        assert is_module, f"{module} imports the private name {name} of {target}"


#: functions allowed over the limit, and why
LONG_TABLES = {"metricseg.theory.verify.default_claims": "a table of the claims the verifier checks"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_function_is_longer_than_80_lines_of_code(module):
    """Docstrings excluded; a table of data may be longer (``LONG_TABLES``)."""
    for node in ast.walk(MODULES[module]):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        lines = (node.end_lineno or node.lineno) - node.lineno + 1
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
            lines -= (first.end_lineno or first.lineno) - first.lineno + 1
        if f"{module}.{node.name}" not in LONG_TABLES:
            assert lines <= 80, f"{module}.{node.name} has {lines} lines of code"
