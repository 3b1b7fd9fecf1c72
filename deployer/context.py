"""What every resource step shares: the run's context, and the Change a step plans.

A step (one per AWS resource, in deployer/resources/) has two methods:
- `plan(ctx) -> Change`: reads only; says whether the resource must be created, updated (with the
  fields that differ, old -> new) or is unchanged. `deployer plan` stops here.
- `apply(ctx, change)`: makes the change, records the resource's IDs in ctx.state and saves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from deployer.aws import Aws
from deployer.config import Config
from deployer.errors import DeployerError
from deployer.state import State, StateStore

Action = Literal["create", "update", "unchanged", "delete", "absent"]


@dataclass
class Change:
    resource: str  # what kind of thing: "role", "function", ...
    name: str  # which one: its name or ID
    action: Action
    diffs: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (old, new)
    current: Any = None  # what plan() read, for apply()

    @property
    def changes_something(self) -> bool:
        return self.action in ("create", "update", "delete")


@dataclass
class Context:
    config: Config
    aws: Aws
    state: State
    store: StateStore
    version: str | None = None
    artifact_sha256: str | None = None  # hex sha256 of the zip being deployed
    artifact_content_sha256: str | None = None  # and of its content (see deployer.build)
    force: bool = False
    local_endpoint: str | None = None  # `--local`: the embedded emulator, whose data plane serves the API
    # Learned along the way, so later steps need not ask AWS again.
    function_created: bool = False
    api_changed: bool = False
    api_resources: list[dict[str, Any]] = field(default_factory=list)

    def save(self) -> None:
        self.store.save(self.state)

    @property
    def partition(self) -> str:
        arn = self.state.role_arn or self.state.function_arn or ""
        return arn.split(":")[1] if arn.count(":") >= 5 else "aws"

    @property
    def account_id(self) -> str | None:
        for arn in (self.state.function_arn, self.state.role_arn):
            if arn and arn.count(":") >= 5:
                return arn.split(":")[4]
        return None

    @property
    def artifact_key(self) -> str:
        assert self.version is not None, "a version is needed to name the artifact"
        return self.config.artifact_key(self.version)


def adopt(ctx: Context, resource: str, name: str, tags: dict[str, str] | None, recorded: bool) -> None:
    """A resource found by name that the state does not record is ours only if it carries our tag:
    never take over (and later delete) someone else's function or role that happens to share the name."""
    if recorded or tags is None or ctx.config.owns(tags):
        return
    raise DeployerError(
        f"a {resource} named {name} already exists but deployer did not create it for {ctx.config.app_name} "
        f"(no deployer:app tag): choose another [app] name, or tag it deployer:app={ctx.config.app_name} to adopt it"
    )


class Step(Protocol):
    resource: str

    def plan(self, ctx: Context) -> Change: ...

    def apply(self, ctx: Context, change: Change) -> None: ...
