"""Steps at once: what each waits for, the order of what a command reports, a deploy that overlaps IAM's
propagation, and the state saved by one writer at a time."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import boto3
import pytest

from deployer import deploy, schedule
from tests.account import BUCKET, Account
from tests.faults import fail
from tests.support import Waiting, assert_in_order

ROLE_NOT_ASSUMABLE = "The role defined for the function cannot be assumed by Lambda."


class First:
    pass


class Second:
    needs: tuple[type, ...] = (First,)


class Third:  # declares nothing: after every step before it
    pass


class Early:
    needs: tuple[type, ...] = ()


def test_a_step_depends_on_what_it_names_and_what_that_needed_or_on_every_step_before_it() -> None:
    order = [First(), Early(), Second(), Third()]
    assert schedule.dependencies(order, "needs") == (
        frozenset(), frozenset(), frozenset({0}), frozenset({0, 1, 2})
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"Second\.needs: First is not earlier"):
        schedule.dependencies([Second(), First()], "needs")


def test_results_are_reported_in_the_walks_order_whichever_finishes_first() -> None:
    second_done = threading.Event()
    finished: list[int] = []

    def work(index: int, before: list[int]) -> int:
        if index == 0:
            second_done.wait(timeout=10)  # the first step ends only once the second has
        finished.append(index)
        if index == 1:
            second_done.set()
        return index * 10 + len(before)

    reported: list[tuple[int, int]] = []
    results = schedule.walk([frozenset(), frozenset(), frozenset({0, 1})], work, lambda i, r: reported.append((i, r)))
    assert finished == [1, 0, 2]
    assert reported == [(0, 0), (1, 10), (2, 22)] and results == [0, 10, 22]


def test_the_api_is_wired_while_iam_propagates_the_new_role(
    make_run, aws_account: Account, waiting: Waiting, lambda_invoke
) -> None:
    """IAM lets Lambda assume the new role only once the API's integrations are made (a propagation as long as the
    wiring): the deploy makes them while CreateFunction is refused, rather than after it."""
    aws_account.client("s3").create_bucket(Bucket=BUCKET)
    session = boto3.Session()
    wired = threading.Event()
    integrations = Counter[str]()

    def integration_made(**_: object) -> None:
        integrations["PutIntegration"] += 1
        if integrations["PutIntegration"] == 2:
            wired.set()

    session.events.register("after-call.api-gateway.PutIntegration", integration_made)
    refused = fail(session, "lambda", "CreateFunction", "InvalidParameterValueException", ROLE_NOT_ASSUMABLE, times=2)
    waiting.sleep = lambda seconds: wired.wait(timeout=5)  # the deployer's retry waits for IAM: here, for the wiring
    run = make_run("1.0.0", session=session)
    deploy.up(run)
    calls = run.aws.calls
    assert refused.injected == 2
    created = max(index for index, call in enumerate(calls) if call == "CreateFunction")  # the try that succeeded
    assert max(index for index, call in enumerate(calls) if call == "PutIntegration") < created  # wired meanwhile
    assert_in_order(calls, "CreateRole", "CreateFunction")
    assert_in_order(calls, "PutIntegration", "CreateDeployment")
    assert_in_order(calls, "CreateAlias", "AddPermission", "CreateDeployment")
    # The same requests as one step after another: two more CreateFunction tries, nothing else.
    assert len(calls) == 23 + 2
    aws_account.assert_stack("v1.0.0/example.zip")


def test_steps_saving_at_once_write_the_shared_state_one_at_a_time(
    make_run, aws_account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_account.client("s3").create_bucket(Bucket=BUCKET)
    run = make_run(shared_state=True)
    writing, most = [0], [0]
    save = type(run.store).save

    def watched(store: object, state: object) -> None:
        writing[0] += 1
        most[0] = max(most[0], writing[0])
        time.sleep(0.02)  # long enough for another thread to come in, if it may
        try:
            save(store, state)
        finally:
            writing[0] -= 1

    monkeypatch.setattr(type(run.store), "save", watched)
    fields = ["role_name", "function_name", "rest_api_id", "log_group", "alias", "bucket"]

    def step(field: str) -> None:
        setattr(run.state, field, f"made-{field}")
        run.save()  # each step saves what it made at once (context.Run.save)

    threads = [threading.Thread(target=step, args=(field,)) for field in fields]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 1  # one writer at a time: each write is If-Match on the ETag the one before it got
    key = "deployer-state/ServerlessExample/test/state.json"
    saved = json.loads(aws_account.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert {field: saved[field] for field in fields} == {field: f"made-{field}" for field in fields}  # none lost
