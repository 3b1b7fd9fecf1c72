"""A plan is data: what `up` would do to each resource, computed by reads only.

`deployer plan` prints a Plan; `deployer up` computes the very same Plan, then executes it
(deploy.py). Each resource step (deployer/resources/) turns what it reads into a Change:

- `action`: create, update or unchanged;
- `diffs`: which named fields differ, old -> new. The fields are constants of the resource's module
  (a StrEnum), and they alone decide which AWS call apply makes; their values are only for display;
- `observed`: what the reads found, for the steps after it and for apply (never written back);
- `learned`: IDs found in the account that the state does not hold yet (a lost state file); the
  executor records them, planning never does.

Planning never writes state and never writes to AWS: see docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from deployer.context import Run, Target

# create/update/delete change the account; check invokes a new release before traffic reaches it (skip: not
# this time); unchanged and absent (already gone, for down) change nothing.
Action = Literal["create", "update", "unchanged", "delete", "absent", "check", "skip"]


@dataclass(frozen=True)
class Diff:
    field: str  # one of the resource module's named fields
    old: Any
    new: Any


@dataclass(frozen=True)
class Change:
    resource: str  # what kind of thing: "role", "function", ...
    name: str  # which one: its name or ID
    action: Action
    diffs: tuple[Diff, ...] = ()
    observed: Any = None
    learned: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""  # what applying it found, for the report (a check's answer, why it was skipped)

    @property
    def changes_something(self) -> bool:
        return self.action in ("create", "update", "delete")

    def touches(self, fields: Iterable[str]) -> bool:
        """Whether any of these named fields differs: how apply chooses its calls."""
        wanted = set(fields)
        return any(diff.field in wanted for diff in self.diffs)


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def of(self, resource: str) -> Change | None:
        """The (first) change of this kind of resource, if it was planned already."""
        return next((change for change in self.changes if change.resource == resource), None)

    @property
    def pending(self) -> list[Change]:
        return [change for change in self.changes if change.changes_something]


class Step(Protocol):
    """One resource in the deploy order: plan reads, apply writes (see deploy.py)."""

    resource: str

    def plan(self, target: Target, earlier: Plan) -> Change: ...

    def apply(self, run: Run, change: Change) -> Change | None: ...  # a Change to report instead, if any
