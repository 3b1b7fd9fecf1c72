"""Reads sent ahead: a deployed stack's plan reads in one round trip, each answer served once and only to the plan,
an error as AWS answered it, and a prediction the account proves wrong costs one read and changes nothing."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import UnknownServiceError

from deployer import credentials, deploy
from deployer.aws import Aws
from deployer.read_ahead import HINT_LIMIT, Read, load_hint, reading_ahead, save_hint
from tests.account import BUCKET, Account
from tests.faults import EVENT_SERVICE
from tests.support import edit

ROUND_TRIP = 0.5  # seconds each request takes, here: long beside a thread's start, even on a busy machine


@dataclass
class Latency:
    """Every request takes ROUND_TRIP; `waves()` says how many round trips the requests took one after another:
    a request sent before any answer came is in wave 1, one sent after answers of wave n is in wave n + 1."""

    round_trip: float = ROUND_TRIP
    sent: list[float] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    answered: dict[int, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    local: threading.local = field(default_factory=threading.local)

    def install(self, session: boto3.Session) -> None:
        session.events.register("before-send", self._send)
        for service in EVENT_SERVICE.values():
            session.events.register(f"response-received.{service}", self._answered)

    def _send(self, request: Any, **_: Any) -> None:
        with self.lock:
            self.local.index = len(self.sent)
            self.sent.append(time.monotonic())
            self.urls.append(request.url)
        time.sleep(self.round_trip)

    def _answered(self, **_: Any) -> None:
        with self.lock:
            self.answered[self.local.index] = time.monotonic()

    def reset(self) -> None:
        self.sent.clear()
        self.urls.clear()
        self.answered.clear()

    def wave_of_each(self) -> list[int]:
        wave: list[int] = []
        for index, sent_at in enumerate(self.sent):
            before = [wave[earlier] for earlier in range(index) if self.answered.get(earlier, float("inf")) <= sent_at]
            wave.append(1 + max(before, default=0))
        return wave

    def waves(self) -> int:
        return max(self.wave_of_each(), default=0)


SERVICES = ("s3", "iam", "logs", "lambda", "apigateway")  # an up's clients, with a REST API


def hints(project: Path) -> list[Path]:
    return sorted((project / ".deployer" / "cache").glob("reads-ahead-*.json"))


def timed_sessions(monkeypatch: pytest.MonkeyPatch, round_trip: float = ROUND_TRIP) -> Latency:
    """The CLI's sessions, each request of theirs taking `round_trip` (see Latency), and recorded."""
    latency, made = Latency(round_trip), credentials.stage_session

    def stage_session(*arguments: Any) -> boto3.Session:
        session = made(*arguments)
        latency.install(session)
        return session

    monkeypatch.setattr(credentials, "stage_session", stage_session)
    return latency


def up(make_run, version: str, session: boto3.Session | None = None):
    run = make_run(version, session=session)
    deploy.up(run)
    return run


def test_an_unchanged_up_reads_in_one_round_trip_with_the_same_fourteen_reads(make_run, aws_account: Account) -> None:
    up(make_run, "1.0.0")
    session, latency = boto3.Session(), Latency()
    latency.install(session)
    run = up(make_run, "1.0.0", session)
    assert len(run.aws.calls) == 14 and len(latency.sent) == 14  # every prediction was the plan's: none unused
    assert latency.waves() == 1  # all fourteen went out before the first answer came


def test_a_first_plan_looks_for_everything_by_name_in_one_round_trip(make_run, aws_account: Account) -> None:
    """Nothing recorded yet: the plan's searches (the artifact, the role, the log group, the function, the REST APIs)
    go out at once; the function's used to wait for the artifact's answer."""
    run = make_run("1.0.0", session=(session := boto3.Session()))
    latency = Latency()
    latency.install(session)
    run.aws.warm("s3", "iam", "logs", "lambda", "apigateway").join()  # as up does: no client is made on the way
    planned = deploy.plan(run.target)
    assert [change.action for change in planned.changes[:4]] == ["create"] * 4
    assert sorted(run.aws.calls) == ["DescribeLogGroups", "GetFunction", "GetRestApis", "GetRole", "HeadObject"]
    assert len(latency.sent) == 5 and latency.waves() == 1


def test_without_reads_ahead_the_same_plan_takes_at_least_four_round_trips(
    make_run, aws_account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What read ahead saves: the plan's reads wait for each other (the REST API's resources after the API, its
    stages after them, the stage's deployment after the stage: four deep), or, sent after an answer they did not
    need, wait for it all the same."""
    up(make_run, "1.0.0")
    monkeypatch.setattr(deploy, "_predicted_reads", lambda target: [])
    session, latency = boto3.Session(), Latency()
    latency.install(session)
    run = up(make_run, "1.0.0", session)
    assert len(run.aws.calls) == 14 and latency.waves() >= 4


def test_a_read_ahead_answers_one_matching_call_of_the_plan_and_nothing_after_it(aws_account: Account) -> None:
    s3 = aws_account.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="v1/app.zip", Body=b"zip")
    aws = Aws("us-east-1", session=boto3.Session())
    here = {"Bucket": BUCKET, "Key": "v1/app.zip"}
    with reading_ahead(aws, [Read("s3", "HeadObject", here)]) as answers:
        assert aws.s3.head_object(**here)["ContentLength"] == 3
        assert answers.served == 1 and aws.calls == ["HeadObject"]  # the read sent ahead, and no other
        aws.s3.head_object(**here)  # a second call: AWS answers it
        assert answers.served == 1 and aws.calls == ["HeadObject", "HeadObject"]
    aws.s3.head_object(**here)
    assert aws.calls == ["HeadObject"] * 3


def test_a_read_ahead_only_answers_the_same_parameters(aws_account: Account) -> None:
    s3 = aws_account.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="v2/app.zip", Body=b"zip-2")
    aws = Aws("us-east-1", session=boto3.Session())
    with reading_ahead(aws, [Read("s3", "HeadObject", {"Bucket": BUCKET, "Key": "v1/app.zip"})]) as answers:
        assert aws.s3.head_object(Bucket=BUCKET, Key="v2/app.zip")["ContentLength"] == 5
        assert answers.served == 0 and answers.unused == 1


def test_an_error_read_ahead_is_raised_to_the_plan_as_aws_answered_it(aws_account: Account) -> None:
    aws = Aws("us-east-1", session=boto3.Session())
    with reading_ahead(aws, [Read("lambda", "GetFunction", {"FunctionName": "nobody"})]) as answers:
        with pytest.raises(aws.lambda_.exceptions.ResourceNotFoundException) as raised:
            aws.lambda_.get_function(FunctionName="nobody")
        assert answers.served == 1 and aws.calls == ["GetFunction"]
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_a_served_answer_goes_through_botocore_once_as_any_answer(aws_account: Account) -> None:
    """botocore decodes IAM's URL-encoded policy documents after each call: a served answer is the one AWS gave
    before that decoding, decoded once, the same as the plan reading it itself."""
    iam = aws_account.client("iam")
    trust = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'  # noqa: E501
    iam.create_role(RoleName="app-role", AssumeRolePolicyDocument=trust)
    aws = Aws("us-east-1", session=boto3.Session())
    with reading_ahead(aws, [Read("iam", "GetRole", {"RoleName": "app-role"})]) as answers:
        served = aws.iam.get_role(RoleName="app-role")["Role"]
        assert answers.served == 1
    assert (
        served["AssumeRolePolicyDocument"] == aws.iam.get_role(RoleName="app-role")["Role"]["AssumeRolePolicyDocument"]
    )
    assert served["AssumeRolePolicyDocument"]["Statement"][0]["Action"] == "sts:AssumeRole"


def test_a_prediction_the_account_proves_wrong_costs_a_read_and_up_still_converges(
    make_run, aws_account: Account
) -> None:
    """The state names a role someone deleted: the reads of its policies, sent ahead, answer NoSuchEntity and go
    unused; the plan sees the role missing and up makes it again, the function using it."""
    up(make_run, "1.0.0")
    iam = aws_account.client("iam")
    role = iam.list_roles()["Roles"][0]["RoleName"]
    for policy in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=role, PolicyArn=policy["PolicyArn"])
    iam.delete_role(RoleName=role)
    run = up(make_run, "1.0.0")
    remade = iam.get_role(RoleName=role)["Role"]
    function = aws_account.client("lambda").get_function(FunctionName=run.config.function_name)["Configuration"]
    assert function["Role"] == remade["Arn"]
    assert run.aws.calls.count("ListRolePolicies") == 1  # the one sent ahead, answered NoSuchEntity: not asked again


def test_clients_are_made_in_the_background_and_one_that_cannot_be_is_left_to_its_caller() -> None:
    """up makes its clients while it waits for the lock (Aws.warm): the same clients its steps then use."""
    aws = Aws("us-east-1", session=boto3.Session())
    aws.warm("s3", "no-such-service", "lambda").join(timeout=30)
    made = dict(aws._clients)
    assert set(made) == {"s3:us-east-1", "lambda:us-east-1"} and aws.lambda_ is made["lambda:us-east-1"]
    with pytest.raises(UnknownServiceError):
        aws.client("no-such-service")


# The hint: the reads the last plan made, sent as soon as the lock is held, with the state's own read -------------


def test_an_unchanged_up_reads_its_plan_in_the_round_trip_of_the_state(
    cli, project: Path, aws_account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock, then the state and the plan's fourteen reads at once, then the lock's release: three round trips.
    Without the hint the reads wait for the state: four."""
    cli("up", "--version", "1.0.0", expect=0)
    [hint] = hints(project)
    assert len(load_hint(hint, SERVICES)) == 13  # and the artifact's, which names the version: the command's own
    latency = timed_sessions(monkeypatch)
    cli("up", "--version", "1.0.0", expect=0)
    assert len(latency.sent) == 17  # lock, state, the fourteen reads, release: none more for the hint
    assert latency.waves() == 3

    hint.unlink()
    latency.reset()
    cli("up", "--version", "1.0.0", expect=0)
    assert len(latency.sent) == 17 and latency.waves() == 4
    assert len(load_hint(hint, SERVICES)) == 13  # written again


def test_down_forgets_the_hint_its_ids_are_gone(cli, project: Path, aws_account: Account) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    assert hints(project)
    cli("down", "--yes", expect=0)
    assert hints(project) == []


def test_a_hint_that_names_a_change_or_is_not_one_is_ignored(cli, project: Path, aws_account: Account) -> None:
    """The hint is a local file anyone can edit: it can only ever make deployer read, and a broken one is none."""
    cli("up", "--version", "1.0.0", expect=0)
    [hint] = hints(project)
    function = {"FunctionName": "ServerlessExample"}
    for text in (
        json.dumps([["lambda", "DeleteFunction", function]]),
        json.dumps([["secretsmanager", "GetSecretValue", {"SecretId": "db"}]]),  # not a service the command uses
        json.dumps([["lambda", "GetFunction", function], ["lambda", "DeleteAlias", {**function, "Name": "test"}]]),
        "[[",
        json.dumps([["lambda", "GetFunction", function]] * 20).ljust(HINT_LIMIT + 1),
        json.dumps({"reads": []}),
    ):
        hint.write_text(text)
        assert load_hint(hint, SERVICES) == []
    hint.write_text(json.dumps([["lambda", "DeleteFunction", function]]))
    cli("up", "--version", "1.0.0", expect=0)
    assert aws_account.client("lambda").get_alias(**function, Name="test")["FunctionVersion"] == "1"
    assert len(load_hint(hint, SERVICES)) == 13  # replaced by the reads the plan made


def test_a_hint_the_plan_does_not_follow_costs_its_reads_and_changes_nothing(
    cli, project: Path, aws_account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hint from before (another app's names here): its reads are sent, never served, and up does as it would."""
    cli("up", "--version", "1.0.0", expect=0)
    [hint] = hints(project)
    stale = [Read("lambda", "GetFunction", {"FunctionName": "Other"}), Read("iam", "GetRole", {"RoleName": "other"})]
    save_hint(hint, stale)
    latency = timed_sessions(monkeypatch, round_trip=0)
    edit(project / "function" / "main.py", "Hello", "Hi")
    cli("up", "--version", "1.1.0", expect=0)
    assert sum(url.endswith("/functions/Other") for url in latency.urls) == 1  # sent, and that is all it did
    alias = aws_account.client("lambda").get_alias(FunctionName="ServerlessExample", Name="test")
    assert alias["FunctionVersion"] == "2"
    assert [read.params for read in load_hint(hint, SERVICES)][:2] != [read.params for read in stale]


def test_a_new_version_reads_its_own_artifact_ahead_not_the_last_ones(
    cli, project: Path, aws_account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("up", "--version", "1.0.0", expect=0)
    latency = timed_sessions(monkeypatch)
    edit(project / "function" / "main.py", "Hello", "Hi")
    cli("up", "--version", "1.1.0", expect=0)
    heads = [url for url in latency.urls if "/v1." in url and "uploads" not in url]
    assert heads and all("/v1.1.0/" in url for url in heads)
    first = next(index for index, url in enumerate(latency.urls) if url.endswith("/v1.1.0/example.zip"))
    assert latency.wave_of_each()[first] == 2  # with the state's read, right after the lock


def test_a_read_with_a_body_to_read_is_never_sent_ahead(aws_account: Account) -> None:
    """S3's GetObject (a read of one of an up's services, as a hint may name) gets no request ahead: its answer is a
    body that would have to be held or read without a bound. A plan's own call of it would go to AWS."""
    s3 = aws_account.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="big", Body=b"x" * 1024)
    aws = Aws("us-east-1", session=boto3.Session())
    with reading_ahead(aws, [Read("s3", "GetObject", {"Bucket": BUCKET, "Key": "big"})]) as answers:
        pass
    assert aws.calls == [] and answers.served == 0
