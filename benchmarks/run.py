"""Benchmark: each command's AWS requests and wall time under a latency model of AWS, beside its floor, and the
build beside `zip -qr -X`.

Runs against a local moto_server it starts on 127.0.0.1 (never real AWS), behind benchmarks/latency.py: a proxy
adding 40 ms a request, IAM's propagation delay and API Gateway's control-plane quotas. Each deployer command
runs as a user runs it, a separate process, with a botocore hook counting its requests. Then it times
`deployer build` (clean, and after a one-line change) on a generated 100 MB tree beside `zip -qr -X`.

    python benchmarks/run.py            # prints Markdown tables (the README shows them)
"""

from __future__ import annotations

import compileall
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deployer.aws import is_mutating

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import DELAY, PROPAGATION, LatencyProxy

REPO = Path(__file__).resolve().parent.parent
BUCKET = "deployer-example-artifacts"
APP = "ServerlessExample"

# Runs the real CLI with a request counter; the counts go to the file named by DEPLOYER_BENCH_CALLS. A request is
# counted as it is sent (a call answered by a read sent ahead sends none), by the name of the call sending it.
COUNTING_CLI = """
import atexit, json, os, sys, threading
import botocore.handlers
calls, calling = [], threading.local()
botocore.handlers.BUILTIN_HANDLERS.append(("before-call", lambda model, **_: setattr(calling, "name", model.name)))
botocore.handlers.BUILTIN_HANDLERS.append(("before-send", lambda **_: calls.append(calling.name)))
atexit.register(lambda: open(os.environ["DEPLOYER_BENCH_CALLS"], "w").write(json.dumps(calls)))
sys.argv = ["deployer", *sys.argv[1:]]
from deployer.cli import main
main()
"""


# moto_server with deployer's fixes where moto differs from AWS in what deployer reads back (an API's binary
# media types and tags, a policy per qualifier, version numbers), as the tests' and the local cloud's.
MOTO_SERVER = (
    "import sys; from deployer.local import patches; patches.install_lambda_fixes(); "
    "patches.install_qualified_policies(); patches.install_binary_media_types(); patches.install_rest_api_tags(); "
    "from moto.server import main; main(sys.argv[1:])"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return server, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto_server did not start")


def reset(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()


def warm_up_moto(url: str) -> None:
    """One read per service, straight to moto_server (not through the latency model): moto makes each service's
    backend at its first request after a reset (IAM loads its ~1,300 managed policies), a second or more that is
    the emulator starting, not AWS answering, and would otherwise land on the first command timed."""
    import boto3

    for service, read in [
        ("iam", "list_roles"), ("lambda", "list_functions"), ("apigateway", "get_rest_apis"),
        ("logs", "describe_log_groups"), ("s3", "list_buckets"), ("sts", "get_caller_identity"),
    ]:  # fmt: skip
        getattr(boto3.client(service, region_name="us-east-1", endpoint_url=url), read)()


def compile_bytecode() -> None:
    """deployer's modules compiled, as `pip install` of the wheel leaves them: an editable checkout run with
    PYTHONDONTWRITEBYTECODE set (as on this machine) would otherwise compile its modules again on every start."""
    compileall.compile_dir(REPO / "deployer", quiet=1)


def run_deployer(project: Path, *arguments: str) -> tuple[list[str], float]:
    calls_file = project / ".bench-calls.json"
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", COUNTING_CLI, *arguments],
        cwd=project,
        env={**os.environ, "DEPLOYER_BENCH_CALLS": str(calls_file)},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"deployer {' '.join(arguments)} failed:\n{result.stderr}")
    return json.loads(calls_file.read_text()), elapsed


def median_run(project: Path, *arguments: str, runs: int = 3) -> tuple[list[str], float]:
    """The median of `runs` runs of a command that changes nothing: its requests, and its median wall time."""
    results = sorted((run_deployer(project, *arguments) for _ in range(runs)), key=lambda result: result[1])
    return results[len(results) // 2]


def writes(calls: list[str]) -> int:
    """Calls that change the account (the check's Invoke does not), as the deployer counts them."""
    return sum(1 for call in calls if is_mutating(call))


def make_project(root: Path) -> Path:
    project = root / "project"
    project.mkdir()
    shutil.copy(REPO / "deploy.toml", project / "deploy.toml")
    shutil.copytree(REPO / "function", project / "function", ignore=shutil.ignore_patterns("__pycache__"))
    return project


def set_greeting(project: Path, old: str, new: str) -> None:
    main = project / "function" / "main.py"
    main.write_text(main.read_text().replace(old, new))


@dataclass(frozen=True)
class Row:
    label: str
    calls: list[str]
    seconds: float
    floor: float
    floor_is: str


def deploy_rows(url: str, root: Path) -> list[Row]:
    """Each scenario under the latency model, with its floor: what no tool could beat under the same model."""
    reset(url)
    warm_up_moto(url)
    import boto3

    boto3.client("s3", region_name="us-east-1", endpoint_url=url).create_bucket(Bucket=BUCKET)
    project = make_project(root)
    fresh = run_deployer(project, "up", "--version", "1.0.0")
    # The two floors' measures, each the median of three runs (they change nothing): one slow start-up on a shared
    # machine would otherwise move every floor built on them.
    unchanged = median_run(project, "up", "--version", "1.0.0")
    status = median_run(project, "status")
    set_greeting(project, "Hello world!", "Bonjour au monde!")
    new_version = run_deployer(project, "up", "--version", "1.0.1")
    rollback = run_deployer(project, "rollback", "1.0.0")
    trips = f"{DELAY * 1000:.0f} ms"
    return [
        Row("fresh up", *fresh, PROPAGATION + unchanged[1], f"IAM's {PROPAGATION} s + an unchanged up"),
        Row("unchanged up", *unchanged, status[1] + 4 * DELAY, f"`status` + 4 round trips of {trips}"),
        Row("new version", *new_version, unchanged[1] + 4 * DELAY, "an unchanged up + 4 dependent writes"),
        Row("rollback", *rollback, status[1] + 3 * DELAY, "`status` + lock, alias, unlock"),
        Row("(status)", *status, status[1], "itself"),
    ]


def make_large_tree(folder: Path, seed: int = 7) -> int:
    """About 100 MB: 6,000 small source-like files (a tenth of them incompressible) and 8 large ones of 6 MB
    (shared-library-like: half text, half random)."""
    rng = random.Random(seed)
    words = [f"name_{index}" for index in range(500)]
    total = 0
    for index in range(6000):
        path = folder / f"package_{index % 60}" / f"module_{index}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = " ".join(rng.choice(words) for _ in range(1_100)).encode()
        data = text if index % 10 else rng.randbytes(8_000)
        path.write_bytes(data)
        total += len(data)
    for index in range(8):
        path = folder / "blobs" / f"lib_{index}.so"
        path.parent.mkdir(exist_ok=True)
        text = " ".join(rng.choice(words) for _ in range(700_000)).encode()
        data = rng.randbytes(6 << 20) if index % 2 else text[: 6 << 20]
        path.write_bytes(data)
        total += len(data)
    (folder / "main.py").write_text("def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n")
    return total


CPU_SECONDS: dict[str, float] = {}  # the median run's CPU time (user + system) of each timed command, by label


def median_seconds(command: list[str], cwd: Path, runs: int = 3, before: Callable[[], None] = lambda: None) -> float:
    """The median wall time of `runs` runs; the CPU time of the same runs is kept in CPU_SECONDS (on a shared
    machine the wall time depends on what else runs, the CPU time much less)."""
    times, cpu = [], []
    for _ in range(runs):
        before()
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
        now = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime)
    CPU_SECONDS[" ".join(command)] = statistics.median(cpu)
    return statistics.median(times)


def build_rows(root: Path) -> list[tuple[str, float]]:
    project = root / "large"
    source = project / "function"
    source.mkdir(parents=True)
    size = make_large_tree(source)
    shutil.copy(REPO / "deploy.toml", project / "deploy.toml")
    time.sleep(2.5)  # the tree settles (zipwriter.SETTLE_NS), as a dependency tree installed earlier has
    deployer = [sys.executable, "-m", "deployer", "build"]
    files = sum(1 for path in source.rglob("*") if path.is_file())
    zipped = root / "plain.zip"
    plain_zip = f"rm -f {zipped}; zip -qr -X {zipped} ."
    main = source / "main.py"

    def clean() -> None:
        shutil.rmtree(project / "dist", ignore_errors=True)

    def one_change() -> None:
        main.write_text(main.read_text() + "# one more line\n")

    zip_seconds = median_seconds(["sh", "-c", plain_zip], source, runs=2)
    clean_seconds = median_seconds(deployer, project, runs=2, before=clean)
    clean_cpu = CPU_SECONDS[" ".join(deployer)]
    incremental_seconds = median_seconds(deployer, project, runs=3, before=one_change)
    one_change()
    cpu = {"zip": CPU_SECONDS[f"sh -c {plain_zip}"], "deployer": CPU_SECONDS[" ".join(deployer)]}
    return [
        (f"`zip -qr -X` ({files} files, {size / 2**20:.0f} MB); CPU {cpu['zip']:.2f} s", zip_seconds),
        (f"`deployer build`, clean (no dist/); CPU {clean_cpu:.2f} s", clean_seconds),
        (f"`deployer build` after a one-line change; CPU {cpu['deployer']:.2f} s", incremental_seconds),
        ("… of which the rebuild itself (`build()`, no CLI start-up)", _build_seconds(project)),
        ("`deployer up`'s staleness check (no rebuild)", _build_seconds(project)),
        ("`deployer --help`", median_seconds([sys.executable, "-m", "deployer", "--help"], project, runs=5)),
    ]


def _build_seconds(project: Path) -> float:
    """`build()` in a process of its own, timed inside it: the rebuild without Python's and the CLI's start-up."""
    code = (
        "import time; from pathlib import Path; from deployer.config import load_config;"
        "from deployer.build import build; c = load_config(Path('deploy.toml'));"
        "t = time.perf_counter(); a = build(c); print(time.perf_counter() - t)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True)
    return float(result.stdout)


def main() -> None:
    os.environ.update(
        AWS_ACCESS_KEY_ID="benchmark", AWS_SECRET_ACCESS_KEY="benchmark", AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )  # fmt: skip
    compile_bytecode()
    server, url = start_moto()
    try:
        with tempfile.TemporaryDirectory() as scratch, LatencyProxy(url) as proxy:
            os.environ["AWS_ENDPOINT_URL"] = proxy.url
            rows = deploy_rows(url, Path(scratch))
            print(f"| scenario ({DELAY * 1000:.0f} ms a request) | requests | of which writes | wall time | "
                  "floor | ratio | the floor is |")  # fmt: skip
            print("|---|---:|---:|---:|---:|---:|---|")
            for row in rows:
                ratio = row.seconds / row.floor
                print(f"| {row.label} | {len(row.calls)} | {writes(row.calls)} | {row.seconds:.2f} s | "
                      f"{row.floor:.2f} s | {ratio:.2f}x | {row.floor_is} |")  # fmt: skip
            refused = ", ".join(f"{what}: {count}" for what, count in sorted(proxy.model.refused.items()))
            print(f"\nRefused by the model: {refused or 'nothing'}.\n")
            build = build_rows(Path(scratch))
            zip_seconds = build[0][1]
            print("| build | median wall time | x `zip -qr -X` |")
            print("|---|---:|---:|")
            for index, (label, seconds) in enumerate(build):
                ratio = f"{seconds / zip_seconds:.2f}x" if index < 4 else ""
                print(f"| {label} | {seconds * 1000:.0f} ms | {ratio} |")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
