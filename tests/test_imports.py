"""What the emulations import: API Gateway's contract, `deployer serve` and the local cloud stay off the deploy core.

The local cloud's data plane runs inside the emulator process and `deployer serve` on a laptop without
AWS: neither may pull in deployer/resources/ (and with it boto3). deployer/gateway/ and deployer/digest.py
are what both sides share, so they import the standard library only.
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AWS_CLIENTS = ("boto3", "botocore", "moto")


def modules_under(*packages: str) -> list[str]:
    names = []
    for package in packages:
        for path in sorted((REPO / package.replace(".", "/")).glob("*.py")):
            if path.stem == "__main__":  # importing it runs the emulator
                continue
            names.append(package if path.stem == "__init__" else f"{package}.{path.stem}")
    return names


@functools.cache  # the same answer for each module every time: the gateway's modules are asked twice
def imported_by(module: str) -> list[str]:
    """Every module loaded by importing `module` alone, in a fresh interpreter (cwd: this checkout)."""
    code = "import importlib, json, sys; importlib.import_module(sys.argv[1]); print(json.dumps(sorted(sys.modules)))"
    found = subprocess.run(
        [sys.executable, "-c", code, module], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(found.stdout)


@pytest.mark.parametrize("module", modules_under("deployer.gateway", "deployer.serve", "deployer.local"))
def test_the_emulations_never_import_the_deploy_cores_resources(module: str) -> None:
    assert [name for name in imported_by(module) if name.startswith("deployer.resources")] == []


@pytest.mark.parametrize("module", [*modules_under("deployer.gateway"), "deployer.digest"])
def test_what_both_sides_share_imports_the_standard_library_only(module: str) -> None:
    loaded = imported_by(module)
    ours = {name for name in loaded if name.startswith("deployer")}
    assert ours <= {"deployer", "deployer.digest"} | {name for name in ours if name.startswith("deployer.gateway")}
    assert [name for name in loaded if name.split(".")[0] in AWS_CLIENTS] == []


def test_lambda_invoke_does_not_import_the_api_data_plane() -> None:
    """Lambda Invoke and the REST API's data plane share the function runners (local/functions.py), nothing else."""
    assert "deployer.local.dataplane" not in imported_by("deployer.local.invoke")
    assert "deployer.local.dataplane" not in imported_by("deployer.local.functions")


def test_request_matching_is_api_gateways_own() -> None:
    """Which resource serves a path is API Gateway behaviour: it lives in gateway/, not in an emulation."""
    assert "deployer.gateway.routing" in imported_by("deployer.local.dataplane")


def test_no_test_module_imports_another() -> None:
    """Shared helpers are in tests/support.py, shared fixtures in tests/conftest.py and its plugins (issue 21, item 7):
    a test module importing another collects that module's tests twice and ties the two together."""
    found = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for name in names:
                if name.split(".")[:2][-1].startswith(("test_", "conftest")) and name.startswith("tests."):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert found == []


# ---- the import graph, read from the source: no circles, nothing pointing upward ----------------------------


def source_modules() -> dict[str, Path]:
    """Every module of deployer/ by its dotted name (a package by its own name, for its __init__.py)."""
    modules = {}
    for path in sorted((REPO / "deployer").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, *, in_functions: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements under `node` that run when the module loads: not in function bodies (unless
    `in_functions`), never under `if TYPE_CHECKING:` (its `else` runs)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not in_functions:
            continue
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _imports(ast.Module(body=[other], type_ignores=[]), in_functions=in_functions)
        else:
            yield from _imports(child, in_functions=in_functions)


def imports_of(module: str, modules: dict[str, Path], *, in_functions: bool = False) -> set[str]:
    """The deployer modules `module` imports: `from deployer.x import y` is deployer.x.y when y is a module."""
    path = modules[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _imports(ast.parse(path.read_text(encoding="utf-8")), in_functions=in_functions):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])]
                )
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        found |= {name for name in names if name in modules and name != module}
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_circle_finder_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_deployer_imports_itself_back_when_it_loads() -> None:
    """Imports that run when a module loads never go round in a circle (imports inside functions, run later, may
    point anywhere; `if TYPE_CHECKING:` imports never run)."""
    modules = source_modules()
    graph = {module: imports_of(module, modules) for module in modules}
    assert circles(graph) == []


THE_COMMANDS_AND_THE_WALK = ("deployer.cli", "deployer.deploy", "deployer.resources")
# What each part of deployer never imports, not even inside a function: what sits above it.
ABOVE = {
    "deployer.local": THE_COMMANDS_AND_THE_WALK,
    "deployer.gateway": THE_COMMANDS_AND_THE_WALK,
    "deployer.serve": THE_COMMANDS_AND_THE_WALK,
    # The stores keep the state; the walk and its resources use them, and the factory (stores.py) chooses one.
    "deployer.state": (*THE_COMMANDS_AND_THE_WALK, "deployer.stores", "deployer.remote_state", "deployer.bucket"),
    "deployer.remote_state": (*THE_COMMANDS_AND_THE_WALK, "deployer.stores"),
    # The bucket's bootstrap serves both the shared state's lock and the artifact's upload.
    "deployer.bucket": (*THE_COMMANDS_AND_THE_WALK, "deployer.stores", "deployer.remote_state", "deployer.state"),
}


@pytest.mark.parametrize("package", sorted(ABOVE))
def test_nothing_imports_what_sits_above_it(package: str) -> None:
    modules = source_modules()
    upward = {
        (module, imported)
        for module in modules
        if module == package or module.startswith(f"{package}.")
        for imported in imports_of(module, modules, in_functions=True)
        if any(imported == name or imported.startswith(f"{name}.") for name in ABOVE[package])
    }
    assert upward == set()


DEPLOY_CORE = ("deployer.plan", "deployer.context", "deployer.deploy", "deployer.check")


def every_import_of(module: str) -> set[str]:
    """The deployer modules a module's source names in any import: at the top, in a function, or for type
    checking only (a circle through `if TYPE_CHECKING:` is a circle for the reader, and for the next import)."""
    path = REPO / (module.replace(".", "/") + ".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from deployer.resources import x`
    return {name for name in found if name.startswith("deployer.")}


def test_the_deploy_core_has_no_import_circles() -> None:
    """plan is data, context is what steps work with, each step imports only the steps before it, deploy walks them:
    nothing in the deploy core imports, even for types only, a module that imports it back."""
    modules = [*DEPLOY_CORE, *(name for name in modules_under("deployer.resources") if name != "deployer.resources")]
    graph = {module: every_import_of(module) & set(modules) for module in modules}

    def circle_from(start: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        for name in sorted(graph[path[-1]]):
            if name == start:
                return (*path, name)
            if name not in path:
                found = circle_from(start, (*path, name))
                if found:
                    return found
        return None

    circles = [found for module in modules if (found := circle_from(module, (module,)))]
    assert circles == [], " -> ".join(circles[0])


def test_plan_is_data_that_imports_no_other_part_of_deployer() -> None:
    assert every_import_of("deployer.plan") == set()
