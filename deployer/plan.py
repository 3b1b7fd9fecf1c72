"""A plan is data: what `up` would do to each resource, computed by reads only.

`deployer plan` prints a Plan; `deployer up` computes the very same Plan, then executes it
(deploy.py). Each resource step (deployer/resources/) turns what it reads into a `Change[T]`:

- `action`: what applying it does (see Action below);
- `diffs`: which named fields differ, old -> new. The fields are constants of the resource's module
  (a StrEnum), and they alone decide which AWS call apply makes; their values are only for display;
- `observed`: what the reads found, of the step's own type T (its module's `Observed`, an ID, ...): for the
  steps after it, which ask for it by step (`earlier.of(function.Function)`), and for apply. Never written back;
- `learned`: IDs found in the account that the state does not hold yet (a lost state file), as named fields
  of the State (`Learned`); the executor records them, planning never does.

Planning never writes state and never writes to AWS: see docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypedDict, TypeVar, cast

T = TypeVar("T")

# create, update and delete change the account; check invokes a new release before traffic reaches it (skip: not
# this time, or not yet); unchanged, absent (already gone, for down) and keep (a shared role another region still
# uses, for down) change nothing; inactive: a step of a front door the stage does not use ([api] type), which
# asked AWS nothing and is never applied.
Action = Literal["create", "update", "unchanged", "delete", "absent", "check", "skip", "keep", "inactive"]


@dataclass(frozen=True)
class Diff:
    field: str  # one of the resource module's named fields
    old: Any
    new: Any


class Learned(TypedDict, total=False):
    """What a plan found in the account that the state should name: each key is a State field, of its type
    (tests/test_plan.py holds them to it). The executor records them before anything is applied."""

    role_name: str | None
    role_arn: str | None
    log_group: str | None
    function_name: str | None
    function_arn: str | None
    releases: dict[str, dict[str, Any]]
    alias: str | None
    lambda_version: str | None
    canary: dict[str, Any] | None
    version: str | None
    bucket: str | None
    key: str | None
    rest_api_id: str | None
    root_resource_id: str | None
    proxy_resource_id: str | None
    permission_statement_id: str | None
    deployment_id: str | None
    base_url: str | None
    certificate_arn: str | None
    domain: str | None
    domain_url: str | None
    domain_status: str | None
    domain_target: dict[str, Any] | None
    dns_pending: list[dict[str, Any]] | None
    api_type: str | None
    http_api_id: str | None
    http_integration_id: str | None
    http_route_id: str | None
    function_url: str | None


@dataclass(frozen=True)
class Change(Generic[T]):
    resource: str  # what kind of thing: "role", "function", ...
    name: str  # which one: its name or ID
    action: Action
    diffs: tuple[Diff, ...] = ()
    observed: T | None = None
    learned: Learned = field(default_factory=lambda: Learned())
    note: str = ""  # what applying it found, for the report (a check's answer, why it was skipped)

    @property
    def changes_something(self) -> bool:
        return self.action in ("create", "update", "delete")

    def touches(self, fields: Iterable[str]) -> bool:
        """Whether any of these named fields differs: how apply chooses its calls."""
        wanted = set(fields)
        return any(diff.field in wanted for diff in self.diffs)


def inactive(resource: str, name: str, api_type: str) -> Change[Any]:
    """The change of a step of a front door the stage does not use: nothing asked, nothing to apply. (A door the stage
    used before is removed at the end of the walk, once the new one is made: resources/front_door.py.)"""
    return Change(resource, name, "inactive", note=f"the stage's front door is type {api_type}")


class StepKind(Protocol[T]):
    """A step class, as a plan is asked for its change (`earlier.of(function.Function)`): the `resource` its
    changes name, and the type of what it observes (read from its plan's return type)."""

    resource: str

    def plan(self, *args: Any) -> Change[T]: ...


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change[Any], ...]

    def __iter__(self) -> Iterator[Change[Any]]:
        return iter(self.changes)

    def of(self, step: type[StepKind[T]]) -> Change[T] | None:
        """The change of this step's resource, typed as that step observes, if it was planned already."""
        found = next((change for change in self.changes if change.resource == step.resource), None)
        return cast("Change[T] | None", found)

    @property
    def pending(self) -> list[Change[Any]]:
        return [change for change in self.changes if change.changes_something]
