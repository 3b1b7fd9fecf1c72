"""The check before traffic: a new release is invoked once, as its front door would call it, before the alias
moves to it.

`up` invokes the published version itself (not the alias, which still serves the old one) with the event the
stage's front door would send for `GET [check] path`: the REST API's proxy event (payload 1.0), or, behind an
HTTP API or a function URL, payload format 2.0, and reads the answer by that door's rules. A function error, a
malformed answer or a 5xx fails the deploy: the alias stays where it was, so users never receive that release.
`--no-check` skips it; an endpoint that cannot run Lambda Invoke (a bare moto server answers that it needs
Docker) reports it skipped.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from deployer.context import Run, Target, arn_account
from deployer.errors import DeployerError
from deployer.gateway import MalformedResponseError, build_event, http_api, to_http_response
from deployer.plan import Change, Plan
from deployer.resources.version import Version, function_observed, published, release_name

NO_INVOKE_HERE = b"error running docker"  # moto's answer when it has no Docker to run a function in
GATEWAY_TIMEOUT = 29  # seconds API Gateway waits for an integration; its clients get 504 after that
# How long each front door waits for the function before its clients get an error; None: the function's own timeout.
DOOR_TIMEOUT: dict[str, float | None] = {"rest": GATEWAY_TIMEOUT, "http": http_api.HTTP_API_TIMEOUT, "url": None}
CHECK_HEADERS = [("Host", "deployer-check"), ("User-Agent", "deployer-check")]
clock = time.monotonic  # replaced by the tests: no test waits half a minute


def _first_line(text: Any) -> str:
    return str(text).strip().splitlines()[0][:200] if str(text).strip() else ""


class Check:
    resource = "check"
    reads: tuple[type, ...] = (Version,)
    needs: tuple[type, ...] = (Version,)  # the event names the API when it exists by then (a fresh one: maybe not)

    def plan(self, target: Target, earlier: Plan) -> Change[None]:
        name = f"GET {target.config.check_path}"
        version = earlier.of(Version)
        if target.keep_live:  # what runs now is already serving: nothing new reaches users
            return Change(self.resource, name, "unchanged")
        observed = function_observed(earlier)
        alias = observed.alias if observed else None
        if version is not None and version.action != "create" and alias is not None:
            serving = {
                alias["FunctionVersion"],
                *((alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}),
            }
            if version.observed in serving:
                return Change(self.resource, name, "unchanged")  # it serves already: it was checked then
        return Change(self.resource, name, "check" if target.check else "skip")

    def apply(self, run: Run, change: Change[None]) -> Change[None] | None:
        if change.action == "skip":
            return None
        target = run.target
        number = published(run)
        event = check_event(run)
        started = clock()
        answer = run.aws.invoker(target.config.timeout).invoke(
            FunctionName=target.config.function_name, Qualifier=number, Payload=json.dumps(event).encode()
        )
        payload = answer["Payload"].read()
        seconds = clock() - started
        release = f"release {release_name(target)} (version {number})"
        door = target.config.api_type
        limit = DOOR_TIMEOUT.get(door, GATEWAY_TIMEOUT)
        if limit is not None and seconds > limit:
            status = 504 if door == "rest" else 503
            raise DeployerError(
                f"{release} failed its check, {change.name}: it answered after {seconds:.0f}s, but API Gateway waits "
                f"{limit:.0f}s at most, then answers {status} to every such request; the stage still serves what it "
                "served: make the function answer sooner"
            )
        if answer.get("FunctionError"):
            if payload.startswith(NO_INVOKE_HERE) and target.aws.is_emulator and not target.local_endpoint:
                return replace(change, action="skip", note="Lambda Invoke is unavailable at this endpoint")
            error = _error_of(payload)
            raise DeployerError(
                f"{release} failed its check, {change.name}: {error}; the stage still serves what it served; "
                "`deployer invoke` and `deployer logs` show more"
            )
        try:
            answer_of = to_http_response if door == "rest" else http_api.to_http_response
            status, _, body = answer_of(json.loads(payload or b"null"))
        except (ValueError, MalformedResponseError) as error:
            raise DeployerError(
                f"{release} failed its check, {change.name}: API Gateway would answer 502 (malformed answer: "
                f"{_first_line(error)}); the stage still serves what it served"
            ) from None
        if status >= 500:
            raise DeployerError(
                f"{release} failed its check, {change.name}: it answered {status} "
                f"{_first_line(body.decode('utf-8', 'replace'))}; the stage still serves what it served"
            )
        return replace(change, note=f"answered {status}")


def check_event(run: Run) -> dict[str, Any]:
    """The event of `GET [check] path` as the stage's front door would send it."""
    config, state = run.target.config, run.state
    account = arn_account(state.function_arn) or ""
    if config.api_type == "rest":
        return build_event(
            "GET",
            config.check_path,
            "",
            CHECK_HEADERS,
            b"",
            config.stage,
            account_id=account,
            api_id=state.rest_api_id or "",
        )
    if config.api_type == "http":
        return http_api.build_event(
            "GET", config.check_path, "", CHECK_HEADERS, b"", api_id=state.http_api_id or "", account_id=account
        )
    anonymous = config.url_auth == "NONE"  # an open URL's requests carry no caller's account
    return http_api.build_event(
        "GET",
        config.check_path,
        "",
        CHECK_HEADERS,
        b"",
        api_id=http_api.function_url_id(state.function_url),
        account_id=http_api.ANONYMOUS if anonymous else account,
    )


def _error_of(payload: bytes) -> str:
    """`ErrorType: first line of the message`, from Invoke's error payload."""
    try:
        error = json.loads(payload)
    except ValueError:
        return _first_line(payload.decode("utf-8", "replace"))
    if not isinstance(error, dict):
        return _first_line(error)
    return f"{error.get('errorType', 'Error')}: {_first_line(error.get('errorMessage', ''))}"
