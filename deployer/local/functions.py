"""The local cloud's Lambda side: finding a function's version in moto, and running it in warm workers.

`resolve_target` says what invoking a function ARN runs ($LATEST, a version, or the version an alias's
routing weights pick for this call); `Functions` runs it in `deployer serve`'s workers (FunctionRunner):
the deployed zip is unpacked once per CodeSha256 into a cache folder, and each version ($LATEST, 1, 2 ...),
code and configuration has a pool of execution environments (serve/pool.py): one per concurrent invocation up
to the concurrency limit (then Lambda's throttle), reused warm, shut down after a few idle minutes; the pool of
a version whose code or configuration changed, or that disappeared, is closed.
Each invocation's log goes to moto's CloudWatch Logs as Lambda writes it. Both the API data plane
(dataplane.py) and Lambda Invoke (invoke.py) run functions through here; neither imports the other.
"""

from __future__ import annotations

import io
import random
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployer.digest import hex_sha256
from deployer.errors import DeployerError
from deployer.gateway.integration import FUNCTION_ARN, FunctionError
from deployer.serve.lambda_log import invocation_log, stream_name
from deployer.serve.pool import (
    ACCOUNT_LIMIT,
    DEFAULT_CONCURRENCY,
    IDLE_SECONDS,
    RESERVED_LIMIT,
    Reaper,
    RunnerPool,
    reap_interval,
)
from deployer.serve.runner import FunctionRunner, Outcome

Console = Callable[[str], None]


def _lambda_backend(account: str, region: str) -> Any | None:
    from moto.awslambda.models import lambda_backends

    if account not in dict.keys(lambda_backends) or region not in dict.keys(lambda_backends[account]):
        return None
    return lambda_backends[account][region]


def find_function(account: str, region: str, name: str, qualifier: str | None) -> Any | None:
    """moto's function object for $LATEST, a version, or the version an alias points at (its primary one)."""
    backend = _lambda_backend(account, region)
    if backend is None:
        return None
    try:
        return backend.get_function(name, qualifier)
    except Exception:  # moto's UnknownFunctionException and friends: there is no such function
        return None


def function_exists(arn: str) -> bool:
    found = FUNCTION_ARN.fullmatch(arn)
    if found is None:
        return False
    return find_function(found["account"], found["region"], found["name"], found["qualifier"]) is not None


@dataclass(frozen=True)
class Target:
    """What one invocation of a function ARN runs, and whose resource policy decides who may invoke it."""

    function: Any  # moto's LambdaFunction: $LATEST or a published version, each with its own code and configuration
    version: str  # "$LATEST" or the number of the version that runs (Invoke's X-Amz-Executed-Version)
    invoked_arn: str  # as the caller named it: unqualified, or qualified by a version or an alias
    policy_arn: str  # the ARN whose policy applies: the invoked one, the unqualified one for $LATEST


def routed_version(alias: Any, draw: Callable[[], float] | None = None) -> str:
    """The version one invocation of the alias runs: each additional version gets its weight's share of
    the invocations (RoutingConfig.AdditionalVersionWeights), the alias's own version the rest."""
    weights = (alias.routing_config or {}).get("AdditionalVersionWeights") or {}
    chance = (draw or random.random)()  # looked up per call: a test may seed or replace it
    for version, weight in weights.items():
        if chance < float(weight):
            return str(version)
        chance -= float(weight)
    return str(alias.function_version)


def resolve_target(account: str, region: str, name: str, qualifier: str | None) -> Target | None:
    """What invoking `name` with `qualifier` (None, $LATEST, a version number or an alias) runs; None when the
    function, the version or the alias does not exist. An alias picks its version anew for each call."""
    latest = find_function(account, region, name, None)
    backend = _lambda_backend(account, region)
    if latest is None or backend is None:
        return None
    unqualified = latest.function_arn
    version = qualifier or "$LATEST"
    if version != "$LATEST" and not version.isdigit():
        try:
            alias = backend.get_alias(version, name)
        except Exception:  # moto's UnknownAliasException: no such alias
            return None
        version = routed_version(alias)
    function = find_function(account, region, name, version)
    if function is None:
        return None
    invoked = f"{unqualified}:{qualifier}" if qualifier else unqualified
    policy_arn = unqualified if qualifier in (None, "$LATEST") else invoked
    return Target(function, str(function.version), invoked, policy_arn)


@dataclass
class _Version:
    key: tuple[Any, ...]  # its code and configuration: a change starts new environments
    pool: RunnerPool  # its execution environments, each with its own log stream


# CloudWatch Logs writes come from request threads; moto's log streams are not thread-safe.
_logs_lock = threading.Lock()


def write_log(function: Any, stream: str, events: Sequence[tuple[int, str]]) -> None:
    """Put an invocation's log events into moto's CloudWatch Logs, as Lambda does: group `/aws/lambda/<name>` in the
    function's account and region, and the stream, created when missing (a reset of the emulator drops them)."""
    from moto.logs.models import LogStream, logs_backends

    backend = logs_backends[function.account_id][function.region]
    group_name = f"/aws/lambda/{function.function_name}"
    with _logs_lock:
        group = backend.groups.get(group_name)
        if group is None:
            group = backend.create_log_group(group_name, {})
        if stream not in group.streams:
            # A new dict rather than an insertion: a FilterLogEvents iterating the streams meanwhile is undisturbed.
            group.streams = {**group.streams, stream: LogStream(group, stream)}
        backend.put_log_events(group_name, stream, [{"timestamp": when, "message": text} for when, text in events])


@dataclass
class Functions:
    """Warm execution environments for the emulated functions' versions, and their unpacked code (one folder per
    CodeSha256).

    Each version has up to `concurrency` environments (the function's reserved concurrency instead, when it has
    one), one per concurrent invocation, each with its own log stream, reused warm and shut down once idle for
    `idle_seconds`. Each invocation's log (START, what the function printed, the error, END, REPORT) goes to
    CloudWatch Logs as Lambda writes it, so `deployer logs` reads the local cloud as it reads AWS."""

    cache: Path
    console: Console
    concurrency: int = DEFAULT_CONCURRENCY
    idle_seconds: float = IDLE_SECONDS
    _versions: dict[str, _Version] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._reaper = Reaper(self.reap, reap_interval(self.idle_seconds))

    def run(self, function: Any, event: Any, invoked_arn: str | None = None, request_id: str | None = None) -> Outcome:
        """One invocation of this version ($LATEST or a published one) with its own code and configuration; its
        outcome carries its log. FunctionThrottled when the version is at its concurrency limit (nothing runs,
        nothing is logged, as with Lambda).

        Finding (or starting) the runner is part of the invocation: a runtime this machine lacks, a zip that
        does not unpack or a function without code fails it, as a bad deployment would."""
        request_id = request_id or str(uuid.uuid4())
        version = str(function.version)
        try:
            pool = self._pool(function)
        except FunctionError as error:
            outcome = Outcome(request_id, error=error, started=time.time(), log_stream=stream_name(version))
        else:
            outcome = pool.run(event, invoked_arn, request_id)
        outcome.log = invocation_log(outcome, version, int(function.memory_size))
        try:
            write_log(function, outcome.log_stream or stream_name(version), outcome.log)
        except Exception as error:  # the log is a record of the invocation, never a reason for it to fail
            self.console(f"{function.function_name}: could not write its log: {type(error).__name__}: {error}")
        return outcome

    def proxy_for(self, target: Target) -> tuple[Callable[[Any], Any], Callable[[str, Sequence[str]], None]]:
        """What a front door's integration calls for `target` (its answer; its error raised) and how it reports a
        failure on the console: the pair gateway's `answer_from_function` takes, for every door alike."""

        def invoke(event: Any) -> Any:
            outcome = self.run(target.function, event, target.invoked_arn)
            if outcome.error is not None:
                raise outcome.error
            return outcome.result

        def report(reason: str, details: Sequence[str]) -> None:
            self.console("\n    ".join([f"{target.invoked_arn} (version {target.version}): {reason}", *details]))

        return invoke, report

    def reap(self) -> int:
        """Shut down the environments idle for longer than `idle_seconds`; how many."""
        with self._lock:
            versions = list(self._versions.values())
        return sum(version.pool.reap() for version in versions)

    def _limit(self, function: Any) -> tuple[int, str]:
        """The version's concurrency limit and Lambda's Reason for a throttle at it: the function's reserved
        concurrency (PutFunctionConcurrency, kept on its unqualified record), else the emulator's default."""
        latest = find_function(function.account_id, function.region, function.function_name, None)
        reserved = getattr(latest, "reserved_concurrency", None)
        if reserved is not None and str(reserved).isdigit():
            return int(reserved), RESERVED_LIMIT
        return self.concurrency, ACCOUNT_LIMIT

    def _pool(self, function: Any) -> RunnerPool:
        code_sha = hex_sha256(function.code_sha_256 or "")
        if not code_sha or not function.code_bytes:
            raise FunctionError(
                "Runtime.InvalidCode",
                f"function {function.function_name} holds no code (package type {function.package_type})",
            )
        environment = {str(key): str(value) for key, value in (function.environment_vars or {}).items()}
        key = (
            code_sha,
            function.handler,
            function.run_time,
            int(function.timeout),
            int(function.memory_size),
            tuple(sorted(environment.items())),
        )
        limit, reason = self._limit(function)
        arn = function.function_arn  # qualified for a published version: each version its own environments
        with self._lock:
            found = self._versions.get(arn)
            if found is not None and found.key == key:
                found.pool.limit, found.pool.reason = limit, reason
                return found.pool
            if found is not None:
                self.console(f"{function.function_name}: code or configuration changed; starting new workers")
                found.pool.close()
                del self._versions[arn]
            source = self._unpack(code_sha, function.code_bytes)

            def start() -> FunctionRunner:
                return FunctionRunner(
                    source,
                    function.handler or "",
                    function.run_time or "",
                    int(function.timeout),
                    int(function.memory_size),
                    function.function_name,
                    environment=environment,
                    region=function.region,
                    account_id=function.account_id,
                    console=self.console,
                    version=str(function.version),
                    capture_output=True,  # Lambda Invoke's LogType Tail returns what one invocation printed
                    log_stream=stream_name(str(function.version)),  # an execution environment, a log stream
                )

            try:
                first = start()
            except DeployerError as error:  # a runtime this machine cannot run
                raise FunctionError("Runtime.Unavailable", str(error)) from None
            if first.note:
                self.console(f"{function.function_name}: {first.note}")
            for gone in [other for other in self._versions if not function_exists(other)]:
                self.console(f"{gone}: the function or version is gone; stopping its workers")
                self._versions.pop(gone).pool.close()
            pool = RunnerPool(start, limit, self.idle_seconds, reason, first=first)
            self._versions[arn] = _Version(key, pool)
            return pool

    def _unpack(self, code_sha: str, code: bytes) -> Path:
        target = self.cache / code_sha
        if target.is_dir():
            return target
        self.cache.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=self.cache, prefix=".unpacking-"))
        try:
            with zipfile.ZipFile(io.BytesIO(code)) as archive:
                archive.extractall(scratch)  # names with `..` or a leading `/` are sanitised by zipfile
            try:
                scratch.rename(target)
            except OSError:  # another request unpacked the same code meanwhile
                shutil.rmtree(scratch, ignore_errors=True)
        except (zipfile.BadZipFile, OSError) as error:
            shutil.rmtree(scratch, ignore_errors=True)
            raise FunctionError("Runtime.InvalidCode", f"cannot unpack the function's code: {error}") from None
        return target

    def close(self) -> None:
        self._reaper.stop()
        with self._lock:
            versions, self._versions = list(self._versions.values()), {}
        for version in versions:
            version.pool.close()
        shutil.rmtree(self.cache, ignore_errors=True)
