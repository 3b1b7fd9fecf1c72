"""The stage's alias: the one name the API calls (`...:function:NAME:STAGE`), pointing at a published version.

A release reaches users by one alias move, and a rollback is one alias move back. A canary keeps the
alias on the current version and routes a share of the traffic to the new one
(`RoutingConfig.AdditionalVersionWeights`); `up` without `--canary` moves all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from deployer.check import Check
from deployer.context import Run, Target
from deployer.plan import Change, Diff, Learned, Plan
from deployer.resources.function import Observed, release_of
from deployer.resources.version import Version, function_observed, published, published_now, release_name

NEW = "(new)"  # the version this run publishes, before it has a number


class Field(StrEnum):
    VERSION = "version"
    CANARY = "canary"


@dataclass(frozen=True)
class Wanted:
    primary: str  # the version most traffic goes to (NEW: the one this run publishes)
    canary: str | None  # the version getting a share, if any
    weight: float  # its share, 0-1

    def resolve(self, new: str) -> Wanted:
        return Wanted(
            new if self.primary == NEW else self.primary, new if self.canary == NEW else self.canary, self.weight
        )


def routing(alias: dict[str, Any] | None) -> dict[str, float]:
    return dict(((alias or {}).get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})


def describe(version: str, weight: float | None = None) -> str:
    return f"{version} ({weight:.0%})" if weight is not None else version


class Alias:
    reads: tuple[type, ...] = (Version,)
    needs: tuple[type, ...] = (Check,)  # the alias moves only to a release that passed its check
    resource = "alias"

    def plan(self, target: Target, earlier: Plan) -> Change[Wanted]:
        config = target.config
        observed = function_observed(earlier)
        alias = observed.alias if observed else None
        version = earlier.of(Version)
        new = version.observed if version is not None and version.action != "create" and version.observed else NEW
        current = alias["FunctionVersion"] if alias else None
        if target.canary is not None and current is not None and current != new:
            wanted = Wanted(current, new, target.canary)
        else:
            wanted = Wanted(new, None, 0.0)
        if alias is None:
            return Change(self.resource, config.alias, "create", observed=wanted)
        diffs = []
        if current != wanted.primary:
            diffs.append(Diff(Field.VERSION, current, wanted.primary))
        now = routing(alias)
        then = {wanted.canary: wanted.weight} if wanted.canary else {}
        if now != then:
            old = ", ".join(describe(number, weight) for number, weight in now.items()) or "none"
            new_text = describe(wanted.canary, wanted.weight) if wanted.canary else "none"
            diffs.append(Diff(Field.CANARY, old, new_text))
        learned = self._record(target, observed, current, now) if not diffs else Learned()
        return Change(self.resource, config.alias, "update" if diffs else "unchanged", tuple(diffs), wanted, learned)

    def apply(self, run: Run, change: Change[Wanted]) -> None:
        config, functions = run.config, run.aws.lambda_
        assert change.observed is not None, "the alias step always plans where the alias goes"
        wanted = change.observed.resolve(published(run))
        arguments: dict[str, Any] = {
            "FunctionName": config.function_name,
            "Name": config.alias,
            "FunctionVersion": wanted.primary,
            "RoutingConfig": {"AdditionalVersionWeights": {wanted.canary: wanted.weight} if wanted.canary else {}},
        }
        if change.action == "create":
            functions.create_alias(**arguments, Description=f"Stage {config.stage} (deployer)")
        else:
            functions.update_alias(**arguments)
        observed = function_observed(run.done)
        record = self._record(
            run.target, observed, wanted.primary, {wanted.canary: wanted.weight} if wanted.canary else {}, run
        )
        with run.saving:  # what it made, saved by this step's own write
            run.state.learn(record)
            run.save_soon()

    @staticmethod
    def _record(
        target: Target, observed: Observed | None, primary: str | None, shares: dict[str, float], run: Run | None = None
    ) -> Learned:
        """What the state says the alias serves: the primary release, and the canary's, by their names."""
        names = _release_names(target, observed, run)
        canary = None
        for number, weight in shares.items():
            canary = {"version": names.get(number), "lambda_version": number, "weight": weight}
        version = names.get(primary) if primary else None
        return Learned(
            alias=target.config.alias,
            lambda_version=primary,
            canary=canary,
            version=version,
            key=target.config.artifact_key(version) if version else None,
            bucket=target.config.bucket if version else None,
        )


def _release_names(target: Target, observed: Observed | None, run: Run | None) -> dict[str, str]:
    """Lambda version number -> release name, from the versions' descriptions and the state's records."""
    names: dict[str, str] = {}
    for item in observed.versions if observed else ():
        release = release_of(item.get("Description"))
        if release:
            names[item["Version"]] = release
    releases = run.state.releases if run is not None else target.recorded.releases
    for release, record in releases.items():
        if record.get("lambda_version"):
            names[str(record["lambda_version"])] = release
    new = published_now(run) if run is not None else None
    if new is not None:
        names[new] = release_name(target)
    if run is not None and not target.keep_live and target.version in releases:  # several names, one version:
        number = releases[target.version].get("lambda_version")  # the one deployed now is what the stage serves
        if number:
            names[str(number)] = target.version
    return names
