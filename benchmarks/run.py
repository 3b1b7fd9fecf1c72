"""Benchmark: AWS requests and wall time of each command, beside a minimal straight-line boto3 script.

Runs against a local moto_server it starts on 127.0.0.1 (never real AWS). Each deployer command runs
as a user runs it, a separate process, with a botocore hook counting its requests. Also times
`deployer build` on a large generated tree beside `zip -qr -X` on the same tree.

    python benchmarks/run.py            # prints Markdown tables (the README shows them)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from deployer.aws import is_mutating

REPO = Path(__file__).resolve().parent.parent
BUCKET = "deployer-example-artifacts"
APP = "ServerlessExample"

# Runs the real CLI with a request counter; the counts go to the file named by DEPLOYER_BENCH_CALLS.
COUNTING_CLI = """
import atexit, json, os, sys
import botocore.handlers
calls = []
botocore.handlers.BUILTIN_HANDLERS.append(("before-call.*.*", lambda model, **_: calls.append(model.name)))
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


# A minimal straight-line boto3 script for the same stack: no reads, no checks, no waiting.
# It is the floor for a first deploy, and shows what a naive script costs on the other scenarios.
BASELINE = """
import json, sys, boto3, botocore.handlers
calls = []
botocore.handlers.BUILTIN_HANDLERS.append(("before-call.*.*", lambda model, **_: calls.append(model.name)))
scenario, zip_path, key, state_path = sys.argv[1:5]
state = json.load(open(state_path)) if scenario != "fresh" else {}
s3, iam, fn, api = (boto3.client(n, region_name="us-east-1") for n in ("s3", "iam", "lambda", "apigateway"))
name = "ServerlessExample"
if scenario in ("fresh", "new_version"):
    s3.put_object(Bucket="deployer-example-artifacts", Key=key, Body=open(zip_path, "rb").read())
if scenario == "fresh":
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": "lambda.amazonaws.com"}}]}
    role = iam.create_role(RoleName=name + "-lambda-exec", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.attach_role_policy(RoleName=role["RoleName"],
                           PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")
    function = fn.create_function(FunctionName=name, Runtime="python3.13", Role=role["Arn"], Handler="main.handler",
                                  Code={"S3Bucket": "deployer-example-artifacts", "S3Key": key})
    rest = api.create_rest_api(name=name)
    proxy = api.create_resource(restApiId=rest["id"], parentId=rest["rootResourceId"], pathPart="{proxy+}")
    uri = ("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/"
           + function["FunctionArn"] + "/invocations")
    for resource in (proxy["id"], rest["rootResourceId"]):
        api.put_method(restApiId=rest["id"], resourceId=resource, httpMethod="ANY", authorizationType="NONE")
        api.put_integration(restApiId=rest["id"], resourceId=resource, httpMethod="ANY", type="AWS_PROXY",
                            integrationHttpMethod="POST", uri=uri)
    api.create_deployment(restApiId=rest["id"], stageName="test")
    account = function["FunctionArn"].split(":")[4]
    fn.add_permission(FunctionName=name, StatementId="apigw", Action="lambda:InvokeFunction",
                      Principal="apigateway.amazonaws.com",
                      SourceArn=f"arn:aws:execute-api:us-east-1:{account}:{rest['id']}/*/*")
    state = {"api": rest["id"], "role": role["RoleName"]}
elif scenario in ("new_version", "rollback"):
    fn.update_function_code(FunctionName=name, S3Bucket="deployer-example-artifacts", S3Key=key)
elif scenario == "down":
    api.delete_rest_api(restApiId=state["api"])
    fn.delete_function(FunctionName=name)
    iam.detach_role_policy(RoleName=state["role"],
                           PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")
    iam.delete_role(RoleName=state["role"])
json.dump(state, open(state_path, "w"))
print(json.dumps(calls))
"""


def run_baseline(scenario: str, zip_path: Path, key: str, state_path: Path) -> tuple[list[str], float]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", BASELINE, scenario, str(zip_path), key, str(state_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout), time.perf_counter() - started


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


def deploy_rows(url: str, root: Path) -> list[tuple[str, list[str], float, list[str] | None, float | None]]:
    """(scenario, deployer calls, deployer seconds, baseline calls, baseline seconds) for each scenario."""
    reset(url)
    import boto3

    boto3.client("s3", region_name="us-east-1", endpoint_url=url).create_bucket(Bucket=BUCKET)
    project = make_project(root)
    rows = []
    steps: list[tuple[str, Callable[[], None], tuple[str, ...], str | None, str]] = [
        ("fresh up", lambda: None, ("up", "--version", "1.0.0"), "fresh", "v1.0.0"),
        ("unchanged up", lambda: None, ("up", "--version", "1.0.0"), None, "v1.0.0"),
        ("new version", lambda: set_greeting(project, "Hello world!", "Bonjour au monde!"),
         ("up", "--version", "1.0.1"), "new_version", "v1.0.1"),
        ("rollback", lambda: None, ("rollback", "1.0.0"), "rollback", "v1.0.0"),
        ("down", lambda: None, ("down", "--yes"), "down", ""),
    ]  # fmt: skip
    for label, prepare, arguments, _, _ in steps:
        prepare()
        calls, seconds = run_deployer(project, *arguments)
        rows.append((label, calls, seconds, None, None))
    # The baseline on a clean account, same scenarios.
    reset(url)
    boto3.client("s3", region_name="us-east-1", endpoint_url=url).create_bucket(Bucket=BUCKET)
    zip_path = project / "dist" / "example.zip"
    state_path = root / "baseline.json"
    for index, (_, _, _, scenario, version) in enumerate(steps):
        if scenario is None:
            continue
        calls, seconds = run_baseline(scenario, zip_path, f"{version}/example.zip", state_path)
        label, ours, our_seconds, _, _ = rows[index]
        rows[index] = (label, ours, our_seconds, calls, seconds)
    return rows


def make_large_tree(folder: Path, files: int = 4000, seed: int = 7) -> int:
    """Thousands of files, tens of MB: source-like text and some incompressible blobs."""
    rng = random.Random(seed)
    total = 0
    words = [f"name_{index}" for index in range(500)]
    for index in range(files):
        path = folder / f"package_{index % 40}" / f"module_{index}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        incompressible = index % 10 == 0
        data = rng.randbytes(40_000) if incompressible else " ".join(rng.choice(words) for _ in range(1_000)).encode()
        path.write_bytes(data)
        total += len(data)
    (folder / "main.py").write_text("def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n")
    return total


def median_seconds(command: list[str], cwd: Path, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def build_rows(root: Path) -> list[tuple[str, float]]:
    project = root / "large"
    source = project / "function"
    source.mkdir(parents=True)
    size = make_large_tree(source)
    shutil.copy(REPO / "deploy.toml", project / "deploy.toml")
    deployer = [sys.executable, "-m", "deployer", "build"]
    files = sum(1 for _ in source.rglob("*.py"))
    zipped = root / "plain.zip"
    plain_zip = f"rm -f {zipped}; zip -qr -X {zipped} ."
    rows = [
        (f"`deployer build` ({files} files, {size / 2**20:.0f} MB)", median_seconds(deployer, project)),
        ("`zip -qr -X` on the same tree", median_seconds(["sh", "-c", plain_zip], source)),
        ("`deployer up`'s staleness check (no rebuild)", _staleness_seconds(project)),
        ("`deployer --help`", median_seconds([sys.executable, "-m", "deployer", "--help"], project, runs=5)),
    ]  # fmt: skip
    return rows


def _staleness_seconds(project: Path) -> float:
    code = (
        "import time; from pathlib import Path; from deployer.config import load_config;"
        "from deployer.build import build; c = load_config(Path('deploy.toml'));"
        "t = time.perf_counter(); a = build(c); assert not a.rebuilt; print(time.perf_counter() - t)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, check=True)
    return float(result.stdout)


def main() -> None:
    os.environ.update(
        AWS_ACCESS_KEY_ID="benchmark", AWS_SECRET_ACCESS_KEY="benchmark", AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )  # fmt: skip
    server, url = start_moto()
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        with tempfile.TemporaryDirectory() as scratch:
            rows = deploy_rows(url, Path(scratch))
            print("| scenario | deployer requests | of which writes | deployer wall time | "
                  "straight-line boto3 requests | its wall time |")  # fmt: skip
            print("|---|---:|---:|---:|---:|---:|")
            for label, ours, seconds, baseline, baseline_seconds in rows:
                theirs = f"{len(baseline)} | {baseline_seconds:.2f} s" if baseline is not None else "— | —"
                print(f"| {label} | {len(ours)} | {writes(ours)} | {seconds:.2f} s | {theirs} |")
            print()
            print("| build | median wall time |")
            print("|---|---:|")
            for label, seconds in build_rows(Path(scratch)):
                print(f"| {label} | {seconds * 1000:.0f} ms |")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
