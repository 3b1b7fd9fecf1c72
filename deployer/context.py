"""What the resource steps work with: a Target to plan against (read-only), a Run to apply with.

- `Target`: the configuration, the account's clients, the version and artifact being deployed, and
  the state as it was read when the command started. `plan()` methods get only this: they read AWS
  and never write, neither to AWS nor to the state.
- `Run`: the Target plus the live state and its store. `apply()` methods record the IDs of what
  they create in `run.state` and save it at once (`save_soon`: written in order behind the steps, see
  deployer.write_behind), so a crash never loses track of what exists. `run.done`
  holds the changes carried out so far, as each step's apply returned them: how a later step learns what an
  earlier one made (`run.done.of(version.Version).observed`: the version it published).
- `Step`: one resource in the deploy order (deploy.UP_ORDER), its plan and its apply, typed by what it observes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from deployer.aws import Aws
from deployer.config import Config
from deployer.errors import DeployerError
from deployer.plan import Change, Plan
from deployer.read_ahead import ReadsAhead
from deployer.state import State, StateStore
from deployer.write_behind import WriteBehind

if TYPE_CHECKING:
    from deployer.secrets import Secret

T = TypeVar("T")


@dataclass(frozen=True)
class ArtifactDigests:
    """The zip being deployed, as its digests: its bytes' and its content's (see deployer.build). Built by `up`,
    or read from the published artifact's metadata (`promote`, `rollback`)."""

    sha256: str
    content_sha256: str


@dataclass(frozen=True)
class Connection:
    """Where a command works: the app's configuration, the account's clients, the state store, and the
    local cloud's URL when it is the local cloud."""

    config: Config
    aws: Aws
    store: StateStore
    local_endpoint: str | None = None

    def target(self, state: State, version: str | None = None, **options: Any) -> Target:
        """A Target on this connection, planning against a snapshot of `state` (options: Target's fields)."""
        return Target(self.config, self.aws, state.copy(), version, local_endpoint=self.local_endpoint, **options)

    def run(self, state: State, version: str | None = None, **options: Any) -> Run:
        """A Run that keeps `state` up to date in this connection's store."""
        return Run(self.target(state, version, **options), state, self.store)


@dataclass(frozen=True)
class Target:
    """What a plan is computed against. `recorded` is the state read at the start: never written."""

    config: Config
    aws: Aws
    recorded: State
    version: str | None = None
    artifact: ArtifactDigests | None = None
    force: bool = False  # replace a published artifact's different bytes
    canary: float | None = None  # route this share (0-1) of the stage's traffic to the release, the rest stays
    check: bool = True  # invoke a new release before any traffic moves to it
    keep_live: bool = False  # publish what the function runs now, as it is (converting a pre-alias stack)
    local_endpoint: str | None = None  # `--local`: the local cloud, whose data plane serves the API
    # [function.secrets] read (deployer.secrets.resolved): None until then; values never leave memory
    secrets: Mapping[str, Secret] | None = None
    ahead: ReadsAhead | None = None  # reads the command sent before the plan (the hint's), answering its calls

    @property
    def region(self) -> str:
        return self.aws.region

    @property
    def artifact_key(self) -> str:
        assert self.version is not None, "a version is needed to name the artifact"
        return self.config.artifact_key(self.version)


@dataclass
class Run:
    """A command that changes things: the target, and the state it keeps up to date as it goes."""

    target: Target
    state: State
    store: StateStore
    done: Plan = field(default_factory=lambda: Plan(()))  # the changes carried out so far, as carried out
    # One writer of the state at a time: steps applied at once each save it (the S3 store writes If-Match on the ETag
    # its last write got, so two writes at once would refuse each other). A step records what it made and saves it
    # under it too (`with run.saving:`), so that no other step's save carries it first: one write per resource made,
    # whichever step finishes first. A copy of the Run shares it.
    saving: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    writes: WriteBehind | None = field(default=None, repr=False, compare=False)  # a copy of the Run shares it too

    def __post_init__(self) -> None:
        if self.writes is None:
            self.writes = WriteBehind(self.store)

    @property
    def config(self) -> Config:
        return self.target.config

    @property
    def aws(self) -> Aws:
        return self.target.aws

    def save(self) -> None:
        """Write the state now, once the writes still on their way are done."""
        with self.saving:
            self.flush()
            self.store.save(self.state)

    def save_soon(self) -> None:
        """Write the state as it is now, behind the writes before it, while the step goes on (deployer.write_behind):
        how a step's apply records what it made."""
        with self.saving:
            assert self.writes is not None
            self.writes.save(self.state)

    def flush(self) -> None:
        """Wait for the writes on their way; raise one that failed."""
        assert self.writes is not None
        self.writes.flush()


class Step(Protocol[T]):
    """One resource in the deploy order: plan reads, apply writes (see deploy.py). T: what its plan observes.

    A step may also declare, as class attributes, the kinds of earlier step it depends on (deployer.schedule):
    `reads: tuple[type, ...]`, the earlier changes its plan asks for (`earlier` holds those, and what they read);
    `needs: tuple[type, ...]`, the steps whose apply must be done before its own (`run.done` holds those, and what
    they needed). A step that declares neither depends on every step before it in UP_ORDER."""

    resource: str

    def plan(self, target: Target, earlier: Plan) -> Change[T]: ...

    def apply(self, run: Run, change: Change[T]) -> Change[T] | None:
        """Carry the change out; the change as carried out when it differs from the plan's (what it made, a
        check's answer, why it was skipped), else None."""
        ...


def arn_partition(*arns: str | None) -> str:
    """The partition (aws, aws-cn, aws-us-gov) of the first ARN given, else aws."""
    return next((arn.split(":")[1] for arn in arns if arn and arn.count(":") >= 5), "aws")


def arn_account(*arns: str | None) -> str | None:
    """The account ID in the first ARN that holds one."""
    return next((arn.split(":")[4] for arn in arns if arn and arn.count(":") >= 5 and arn.split(":")[4]), None)


def check_ours(config: Config, resource: str, name: str, tags: dict[str, str] | None) -> None:
    """A resource found by name (or named by a state file) is ours only if it carries our tag: never take
    over (and later delete) someone else's function, role or API that happens to share the name. (Tags that
    cannot be read at all, for want of a permission, are no evidence either way.)"""
    if tags is None or config.owns(tags):
        return
    owner = tags.get("deployer:app")
    if owner:  # another app claims it: adopting it would take it from that app
        raise DeployerError(
            f"a {resource} named {name} already exists but deployer made it for app {owner}, not for "
            f"{config.app_name}: choose another [app] name (or stage), or move a state that names it aside"
        )
    raise DeployerError(
        f"a {resource} named {name} already exists but deployer did not make it (no deployer:app tag), not for "
        f"{config.app_name}: choose another [app] name, or tag it deployer:app={config.app_name} to adopt it"
    )
