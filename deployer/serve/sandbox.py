"""What a worker process is started with: the interpreter, its command line and its environment.

Python runtimes run under the interpreter named like the runtime (`python3.13`) when one really runs
here, else under the Python running this tool; Node.js runtimes under `node`. Either way the worker
gets Lambda's environment variables and the function's own, not the caller's shell.
"""

from __future__ import annotations

import functools
import os
import platform
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


def _probe(command: Sequence[str], code: str) -> str | None:
    try:
        done = subprocess.run([*command, code], capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache
def find_interpreter(runtime: str) -> tuple[str, str]:
    """(executable, version) to run `runtime` with: "python3.13" if it really runs, else this Python; `node`.

    A name on PATH may be a shim (pyenv) that refuses to run, so each candidate is asked for its real
    executable and version.
    """
    if runtime.startswith("python"):
        wanted = runtime.removeprefix("python")
        candidate = shutil.which(runtime)
        answer = candidate and _probe(
            [candidate, "-I", "-S", "-c"],
            "import platform, sys; print(platform.python_version()); print(sys.executable)",
        )
        if answer:
            version, _, executable = answer.partition("\n")
            if version.startswith(wanted + ".") and executable:
                return executable, version
        return sys.executable, platform.python_version()
    if runtime.startswith("nodejs"):
        node = shutil.which("node")
        if node is None:
            raise DeployerError(f"cannot run {runtime} locally: `node` is not on PATH; install Node.js 22 or newer")
        return node, (_probe([node, "-e"], "console.log(process.versions.node)") or "unknown")
    raise UsageError(f"cannot run runtime {runtime!r} locally; use a python3.x or nodejs runtime")


def worker_command(runtime: str) -> list[str]:
    """The command line of a worker for `runtime`, without the two pipe descriptors."""
    executable, _ = find_interpreter(runtime)
    if runtime.startswith("python"):
        # -I: no PYTHON* variables, no user site; -S: no site-packages at all (nothing from this tool's
        # venv); -B: no __pycache__ in the function's folder; -u: prints reach the console at once.
        return [executable, "-I", "-S", "-B", "-u", str(PYTHON_WORKER)]
    return [executable, str(NODE_WORKER)]


def interpreter_note(runtime: str) -> str | None:
    """A warning when the local interpreter is not the runtime's version, else None."""
    executable, version = find_interpreter(runtime)
    if runtime.startswith("python"):
        wanted, language = runtime.removeprefix("python"), "Python"
    else:
        wanted, language = runtime.removeprefix("nodejs").removesuffix(".x"), "Node.js"
    if version == wanted or version.startswith(wanted + "."):
        return None
    return f"note: {runtime} runs here under {language} {version} ({executable})"


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
