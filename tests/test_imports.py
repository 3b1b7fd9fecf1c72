"""What the emulations import: API Gateway's contract, `deployer serve` and the local cloud stay off the deploy core.

The local cloud's data plane runs inside the emulator process and `deployer serve` on a laptop without
AWS: neither may pull in deployer/resources/ (and with it boto3). deployer/gateway/ and deployer/digest.py
are what both sides share, so they import the standard library only.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
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


DEPLOY_CORE = ("deployer.plan", "deployer.context", "deployer.deploy", "deployer.check")


def imports_of(module: str) -> set[str]:
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
    graph = {module: imports_of(module) & set(modules) for module in modules}

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
    assert imports_of("deployer.plan") == set()
