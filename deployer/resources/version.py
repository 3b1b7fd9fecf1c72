"""Published Lambda versions: one per release, immutable (their pruning: deployer/resources/prune.py).

`up --version V` publishes $LATEST once it holds V's code and configuration (PublishVersion, guarded by
the expected CodeSha256 so a concurrent change is refused, with `deployer release V` as its
description so V -> version is recovered from AWS after a lost state). A release that is already
published, code and configuration alike, is not published again: the alias moves to it.

The Version change observes the Lambda version number: the one found alike when nothing is published, the one
published once applied (`published(run)`: what the check invokes and the alias moves to).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws import LAMBDA_PRECONDITION_FAILED, error_code, function_busy, read_or_none
from deployer.context import Run, Target
from deployer.digest import lambda_sha256
from deployer.errors import DeployerError
from deployer.plan import Change, Diff, Plan
from deployer.resources.function import (
    WAIT,
    Function,
    Observed,
    Release,
    pins_by_version,
    release_label,
    wait_until_ready,
)
from deployer.retry import retrying


def function_observed(earlier: Plan) -> Observed | None:
    """What the function step read: its versions, its alias, the release wanted (None: it is created)."""
    change = earlier.of(Function)
    return change.observed if change is not None else None


def release_name(target: Target) -> str:
    """The release a version publishes: the version being deployed, or, converting, the one that runs now."""
    if target.keep_live:
        return target.recorded.version or "live"
    assert target.version is not None
    return target.version


class Version:
    reads: tuple[type, ...] = (Function,)
    needs: tuple[type, ...] = (Function,)
    resource = "version"

    def plan(self, target: Target, earlier: Plan) -> Change[str]:
        observed = function_observed(earlier)
        name = release_name(target)
        if observed is None or observed.matching is None:
            if observed is not None and not target.force and not target.keep_live:
                _refuse_another_configuration(target, observed, name)
            return Change(self.resource, name, "create")
        # Already published, code and configuration alike: the alias moves to it, nothing is published. A release of
        # another name with the very same code and configuration is recorded under this name too (rollback finds it).
        number = observed.matching
        shown = f"{name} = version {number}"
        recorded = (target.recorded.releases.get(name) or {}).get("lambda_version") == number
        labelled = any(
            item["Version"] == number and item.get("Description") == release_label(name) for item in observed.versions
        )
        serving = observed.alias is not None and observed.alias.get("FunctionVersion") == number
        if (recorded or labelled) and (not serving or target.recorded.version == name or target.keep_live):
            return Change(self.resource, shown, "unchanged", observed=number)
        was = target.recorded.version if serving else None
        return Change(self.resource, shown, "update", (Diff(RELEASE, was, name),), observed=number)

    def apply(self, run: Run, change: Change[str]) -> Change[str] | None:
        if change.action == "update":
            assert change.observed is not None, "a release recorded under this name is a version found"
            self._record_alike(run, change.observed)
            return None
        config, name = run.config, release_name(run.target)
        functions = run.aws.lambda_
        expected = run.target.artifact.sha256 if run.target.artifact and not run.target.keep_live else None
        try:
            published = retrying(
                lambda: functions.publish_version(
                    FunctionName=config.function_name,
                    Description=release_label(name),
                    **({"CodeSha256": lambda_sha256(expected)} if expected else {}),
                ),
                waits=run.aws.waits,
                when=function_busy,
                before_retry=lambda: wait_until_ready(run),
            )
        except ClientError as error:
            if error_code(error) != LAMBDA_PRECONDITION_FAILED:
                raise
            raise DeployerError(
                f"the code of {config.function_name} changed while {name} was being published (another deploy?): "
                "run the same command again"
            ) from None
        number = published["Version"]
        if published.get("State") == "Pending":
            functions.get_waiter("published_version_active").wait(
                FunctionName=config.function_name, Qualifier=number, WaiterConfig=WAIT
            )
        # The secrets' versions $LATEST was given by this run (converting, it runs what it ran: none of ours).
        secrets = {} if run.target.keep_live else (run.target.secrets or {})
        record = Release.of(published, {name: secret.pin() for name, secret in secrets.items()}).record()
        with run.saving:  # what it made, saved by this step's own write
            run.state.releases = {**run.state.releases, name: {**record, "lambda_version": number}}
            run.save_soon()
        return replace(change, observed=number)  # the steps after it invoke it, and move the alias to it

    @staticmethod
    def _record_alike(run: Run, number: str) -> None:
        """Record this release as the published version that already is it, code and configuration; if that version
        is the one serving, this release is what the stage serves now."""
        name = release_name(run.target)
        observed = function_observed(run.done)
        assert observed is not None
        configuration = next(item for item in observed.versions if item["Version"] == number)
        pins = pins_by_version(run.target).get(number)
        record = {**Release.of(configuration, pins).record(), "lambda_version": number}
        with run.saving:  # what it made, saved by this step's own write
            run.state.releases = {**run.state.releases, name: record}
            if observed.alias is not None and observed.alias.get("FunctionVersion") == number:
                run.state.version = name
                run.state.bucket, run.state.key = run.config.bucket, run.config.artifact_key(name)
            run.save_soon()


RELEASE = "release"  # the field a Diff names when a release is recorded under another name


def _refuse_another_configuration(target: Target, observed: Observed, name: str) -> None:
    """Release `name` is published already (or recorded) with other code or configuration: a release is immutable,
    as an artifact is; only --force publishes another version under that name."""
    wanted = replace(observed.wanted, role=None)
    labelled = [item for item in observed.versions if item.get("Description") == release_label(name)]
    record = target.recorded.releases.get(name)
    if labelled:
        found = Release.of(labelled[-1], pins_by_version(target).get(labelled[-1]["Version"]))
        differs = _differences(found.record(), wanted.record())
        if not differs and replace(found, role=None) != wanted:
            differs = ["environment values"]
    elif record is not None:
        differs = _differences({key: record.get(key) for key in wanted.record()}, wanted.record())
    else:
        return
    if differs:
        raise DeployerError(
            f"release {name} is already published with another {', '.join(differs)}; a release is immutable: pick "
            "a new version, or pass --force to publish it again under the same name"
        )


def _differences(published: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    names = {"code_sha256": "code", "environment": "environment variables", "secrets": "secret versions"}
    return [names.get(key, key) for key in wanted if published.get(key) != wanted[key]]


def published(run: Run) -> str:
    """The Lambda version the release runs as: the one this run published, or the one found."""
    change = run.done.of(Version)
    assert change is not None and change.observed, "the version step plans a version or publishes one"
    return change.observed


def published_now(run: Run) -> str | None:
    """The Lambda version this very run published, if it did."""
    change = run.done.of(Version)
    return change.observed if change is not None and change.action == "create" else None


def versions_by_number(target: Target) -> dict[str, dict[str, Any]] | None:
    """The function's published versions by number; None when the function does not exist."""
    from deployer.resources.function import list_versions

    found = read_or_none(lambda: list_versions(target.aws, target.config.function_name))
    return None if found is None else {item["Version"]: item for item in found}


def find_release(target: Target, version: str, versions: dict[str, dict[str, Any]]) -> str | None:
    """The Lambda version that runs release `version`: as the state recorded it (if it is still there and
    still that code), else as the versions' descriptions say (a lost state). None: never published, or pruned."""
    record = target.recorded.releases.get(version) or {}
    number = record.get("lambda_version")
    if number in versions and Release.of(versions[number]).code_sha256 == record.get("code_sha256"):
        return str(number)
    labelled = [item for item in versions.values() if item.get("Description") == release_label(version)]
    return labelled[-1]["Version"] if labelled else None
