"""What a worker process is started with: the interpreter, its command line and its environment.

Python runtimes run under an interpreter of the runtime's own version when this machine has one: named
like the runtime on PATH (`python3.13`), or installed by pyenv or uv (which may not be on PATH); else
under the Python running this tool. Node.js runtimes run under `node`, or the runtime's major version
from nvm (`nodejs20.x` under Node 20) when `node` is another. When the version differs, `check_runtime`
refuses a bundle with compiled code (`*.cpython-313-*.so`, a cp313 wheel, a `.node` addon: it would not
load) in one line naming what to install, and only warns for pure Python or JavaScript. Either way the
worker gets Lambda's environment variables and the function's own, not the caller's shell.
"""

from __future__ import annotations

import functools
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from deployer.errors import DeployerError, UsageError

WORKER_DIR = Path(__file__).resolve().parent
PYTHON_WORKER = WORKER_DIR / "python_worker.py"
NODE_WORKER = WORKER_DIR / "node_worker.js"

# The caller's AWS credentials must not reach the function; the shared files and the instance
# metadata service are closed too, so an SDK in the function cannot find the developer's identity.
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
PASSTHROUGH_VARIABLES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SYSTEMROOT")
# Compiled Python code tied to one CPython version: an extension module's name, a wheel's tag.
EXTENSION_MODULE = re.compile(r"\.cpython-3(\d+)[-\w]*\.so$")
WHEEL_TAG = re.compile(r"^Tag:\s*cp3(\d+)-cp3\d+m?-", re.MULTILINE)
PRUNED_FOLDERS = frozenset({"__pycache__", ".git"})


def _probe(command: Sequence[str], code: str) -> str | None:
    try:
        done = subprocess.run([*command, code], capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _python_candidates(wanted: str) -> list[str]:
    """Where a Python `wanted` (3.13) may be: on PATH, then pyenv's and uv's installs (newest first)."""
    home = Path.home()
    pyenv = Path(os.environ.get("PYENV_ROOT") or home / ".pyenv")
    uv = Path(os.environ.get("UV_PYTHON_INSTALL_DIR") or home / ".local" / "share" / "uv" / "python")
    found = [shutil.which(f"python{wanted}")]
    found += sorted(glob.glob(str(pyenv / "versions" / f"{wanted}.*" / "bin" / f"python{wanted}")), reverse=True)
    found += sorted(glob.glob(str(uv / f"cpython-{wanted}.*" / "bin" / f"python{wanted}")), reverse=True)
    return [candidate for candidate in found if candidate]


def _node_candidates(major: str) -> list[str]:
    """Where a Node.js `major` (20) may be besides `node`: `node20` on PATH, nvm's installs (newest first)."""
    nvm = Path(os.environ.get("NVM_DIR") or Path.home() / ".nvm")
    found = [shutil.which(f"node{major}")]
    found += sorted(glob.glob(str(nvm / "versions" / "node" / f"v{major}.*" / "bin" / "node")), reverse=True)
    return [candidate for candidate in found if candidate]


@functools.cache
def find_interpreter(runtime: str) -> tuple[str, str]:
    """(executable, version) to run `runtime` with: one of the runtime's own version if this machine has it,
    else this Python (for pythonX.Y) or `node` (for nodejsN.x).

    A name on PATH may be a shim (pyenv) that refuses to run, so each candidate is asked for its real
    executable and version.
    """
    if runtime.startswith("python"):
        wanted = runtime.removeprefix("python")
        for candidate in _python_candidates(wanted):
            answer = _probe(
                [candidate, "-I", "-S", "-c"],
                "import platform, sys; print(platform.python_version()); print(sys.executable)",
            )
            version, _, executable = (answer or "").partition("\n")
            if version.startswith(wanted + ".") and executable:
                return executable, version
        return sys.executable, platform.python_version()
    if runtime.startswith("nodejs"):
        node = shutil.which("node")
        if node is None:
            raise DeployerError(f"cannot run {runtime} locally: `node` is not on PATH; install Node.js 22 or newer")
        major = runtime.removeprefix("nodejs").removesuffix(".x")
        version = _probe([node, "-e"], "console.log(process.versions.node)") or "unknown"
        if version.split(".", 1)[0] != major:
            for candidate in _node_candidates(major):
                other = _probe([candidate, "-e"], "console.log(process.versions.node)")
                if other and other.split(".", 1)[0] == major:
                    return candidate, other
        return node, version
    raise UsageError(f"cannot run runtime {runtime!r} locally; use a python3.x or nodejs runtime")


def worker_command(runtime: str) -> list[str]:
    """The command line of a worker for `runtime`, without the two pipe descriptors."""
    executable, _ = find_interpreter(runtime)
    if runtime.startswith("python"):
        # -I: no PYTHON* variables, no user site; -S: no site-packages at all (nothing from this tool's
        # venv); -B: no __pycache__ in the function's folder; -u: prints reach the console at once.
        return [executable, "-I", "-S", "-B", "-u", str(PYTHON_WORKER)]
    return [executable, str(NODE_WORKER)]


def _runs_as(runtime: str) -> tuple[str, str, str, str]:
    """(language, the runtime's version, the local interpreter's version, its executable)."""
    executable, version = find_interpreter(runtime)
    if runtime.startswith("python"):
        return "Python", runtime.removeprefix("python"), version, executable
    return "Node.js", runtime.removeprefix("nodejs").removesuffix(".x"), version, executable


def interpreter_note(runtime: str) -> str | None:
    """A warning when the local interpreter is not the runtime's version, else None."""
    language, wanted, version, executable = _runs_as(runtime)
    if version == wanted or version.startswith(wanted + "."):
        return None
    return f"note: {runtime} runs here under {language} {version} ({executable})"


def compiled_code(runtime: str, folders: Sequence[Path]) -> tuple[Path, str] | None:
    """The first file under `folders` holding code compiled for one version of the runtime's language, and
    that version ("3.13", or "a Node.js addon"); None for pure Python or JavaScript."""
    for folder in folders:
        for root, names, files in os.walk(folder):
            names[:] = [name for name in names if name not in PRUNED_FOLDERS]
            for name in files:
                path = Path(root) / name
                if runtime.startswith("nodejs"):
                    if name.endswith(".node"):
                        return path, "a Node.js addon"
                    continue
                extension = EXTENSION_MODULE.search(name)
                if extension:
                    return path, f"3.{extension.group(1)}"
                if name == "WHEEL" and root.endswith(".dist-info"):
                    try:
                        tag = WHEEL_TAG.search(path.read_text(encoding="utf-8", errors="replace"))
                    except OSError:
                        continue
                    if tag:
                        return path, f"3.{tag.group(1)}"
    return None


def check_runtime(runtime: str, folders: Sequence[Path]) -> str | None:
    """None when the runtime's own version runs here; a one-line warning when another one does and the code
    is pure Python or JavaScript. DeployerError, in one line naming what to install, when another one does
    and `folders` (the source and its dependencies) hold code compiled for another version: it would not load.
    """
    note = interpreter_note(runtime)
    if note is None:
        return None
    language, wanted, version, _ = _runs_as(runtime)
    found = compiled_code(runtime, folders)
    if found is None:
        return note
    path, compiled_for = found
    if runtime.startswith("python") and compiled_for == ".".join(version.split(".")[:2]):
        return note  # compiled for the Python that runs here after all
    install = f"Python {wanted} (e.g. `pyenv install {wanted}`)" if language == "Python" else f"Node.js {wanted}"
    raise DeployerError(
        f"cannot run {runtime} here: {path} is compiled code ({compiled_for}) that {language} {version} "
        f"cannot load; install {install}"
    )


def lambda_environment(
    *,
    function_name: str,
    handler: str,
    runtime: str,
    memory: int,
    region: str,
    source: Path,
    code_dirs: Sequence[Path],
    environment: Mapping[str, str],
    base: Mapping[str, str] | None = None,
    version: str = "$LATEST",
) -> dict[str, str]:
    """The worker's environment: Lambda's variables plus the function's own, not the caller's shell.

    `version` is the published version the worker runs (the local cloud runs each one apart), else $LATEST."""
    base = os.environ if base is None else base
    variables = {name: base[name] for name in PASSTHROUGH_VARIABLES if name in base}
    variables.setdefault("LANG", "C.UTF-8")
    import_path = [str(source), *(str(folder) for folder in code_dirs)]
    log_stream = time.strftime("%Y/%m/%d/", time.gmtime()) + f"[{version}]" + uuid.uuid4().hex
    variables.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "LAMBDA_TASK_ROOT": str(source),
            "LAMBDA_RUNTIME_DIR": str(WORKER_DIR),
            "_HANDLER": handler,
            "TZ": ":UTC",
        }
    )
    if runtime.startswith("python"):
        variables["PYTHONPATH"] = os.pathsep.join(import_path)
    else:
        variables["NODE_PATH"] = os.pathsep.join(import_path[1:] + import_path[:1])
    variables.update(environment)
    for name in CREDENTIAL_VARIABLES:
        variables.pop(name, None)
    return variables
