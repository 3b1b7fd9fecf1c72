"""The pruning of old releases: Lambda's code storage per region is limited, so only the newest `[releases] keep`
published versions stay, and a version an alias points at (or routes a canary's share to) is never deleted.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from deployer.aws import delete_if_present, function_busy
from deployer.context import Run, Target
from deployer.plan import Change, Plan
from deployer.resources.alias import Alias
from deployer.resources.function import wait_until_ready
from deployer.resources.version import Version, function_observed
from deployer.retry import retrying


class Prune:
    """Delete the oldest published versions beyond `[releases] keep`; never one an alias uses."""

    resource = "old versions"

    def plan(self, target: Target, earlier: Plan) -> Change[tuple[str, ...]]:
        observed = function_observed(earlier)
        version = earlier.of(Version)
        publishing = version is not None and version.action == "create"
        if observed is None or target.keep_live:
            return Change(self.resource, "none", "unchanged")
        numbers = [item["Version"] for item in observed.versions]
        surplus = len(numbers) + (1 if publishing else 0) - target.config.keep_releases
        if surplus <= 0:
            return Change(self.resource, "none", "unchanged")
        protected = _aliased(target)
        alias = earlier.of(Alias)
        if alias is not None and alias.observed:  # where the stage's alias points once this run has moved it
            protected.update(number for number in (alias.observed.primary, alias.observed.canary) if number)
        doomed = tuple(number for number in numbers[:surplus] if number not in protected)
        if not doomed:
            return Change(self.resource, "none", "unchanged")
        return Change(self.resource, ", ".join(doomed), "delete", observed=doomed)

    def apply(self, run: Run, change: Change[tuple[str, ...]]) -> None:
        name, functions = run.config.function_name, run.aws.lambda_
        doomed = change.observed or ()
        for number in doomed:
            retrying(
                partial(delete_if_present, partial(functions.delete_function, FunctionName=name, Qualifier=number)),
                waits=run.aws.waits,
                when=function_busy,
                before_retry=lambda: wait_until_ready(run),
            )
        with run.saving:  # what it made, saved by this step's own write
            run.state.releases = {
                release: {**record, "lambda_version": None} if record.get("lambda_version") in doomed else record
                for release, record in run.state.releases.items()
            }
            run.save_soon()


def _aliased(target: Target) -> set[str]:
    """Every version another alias of the function points at or routes to (one made by hand, say)."""
    paginator = target.aws.lambda_.get_paginator("list_aliases")
    aliases: list[dict[str, Any]] = [
        item for page in paginator.paginate(FunctionName=target.config.function_name) for item in page["Aliases"]
    ]
    protected: set[str] = set()
    for alias in aliases:
        if alias["Name"] == target.config.alias:
            continue  # ours moves in this run: the plan says where to
        protected.add(alias["FunctionVersion"])
        protected.update((alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights", {}))
    return protected
