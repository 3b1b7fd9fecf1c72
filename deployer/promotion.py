"""Promotion from one stage's bucket to another's (another account, another region): the artifact's bytes copied as
they are, never rebuilt, verified by their sha256 before they can be deployed.

Stages sharing a bucket share their artifacts: nothing is copied (`same_bucket`). Otherwise the source's object
(GetObject, read as a stream) is uploaded into the target's bucket by S3's managed transfer, a part at a time (the
artifact is never held whole in memory), with the metadata it was published with. The bytes are hashed as they are
read; when the last byte is read its sha256 must be the one recorded at `up` (the object's `sha256` metadata),
else the read fails before the transfer completes: S3 never makes the object (a single PutObject is not sent, a
multipart upload is aborted), so the target stage is left as it was.
"""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws import is_no_such_bucket
from deployer.bucket import finish_if_unfinished, make_bucket, unfinished_note
from deployer.config import Config
from deployer.context import ArtifactDigests, Run, Target
from deployer.errors import DeployerError
from deployer.resources import artifact

# Parts in flight. The managed transfer reads the first MULTIPART_THRESHOLD bytes at once (to choose between one
# PutObject and parts), then 8 MB parts: what is in memory is bounded, whatever the artifact's size.
MAX_CONCURRENCY = 4


def same_bucket(source: Config, target: Config) -> bool:
    """Whether the two stages' artifacts are the same objects (one bucket): then promote copies nothing."""
    return source.bucket == target.bucket


class ArtifactChanged(DeployerError):
    """The bytes read are not the ones the version was published with."""


class VerifiedStream:
    """A file-like reader of the source object's body that hashes what passes through it and refuses, at its last
    byte, bytes whose sha256 is not the published one (and a body shorter or longer than announced)."""

    def __init__(self, body: Any, length: int, sha256: str, name: str) -> None:
        self._body, self._length, self._sha256, self._name = body, length, sha256, name
        self._digest = hashlib.sha256()
        self._read = 0

    def read(self, amount: int | None = -1) -> bytes:
        chunk = self._body.read() if amount is None or amount < 0 else self._body.read(amount)
        self._read += len(chunk)
        self._digest.update(chunk)
        if self._read > self._length or (not chunk and amount != 0 and self._read < self._length):
            raise ArtifactChanged(
                f"{self._name} sent {self._read} bytes where S3 announced {self._length}; nothing was copied: "
                "run the promote again"
            )
        if chunk and self._read == self._length and self._digest.hexdigest() != self._sha256:
            raise ArtifactChanged(
                f"{self._name} does not hold the bytes its version was published with (sha256 "
                f"{self._digest.hexdigest()[:12]}, published {self._sha256[:12]}): it was changed since; nothing was "
                "copied nor deployed: publish a new version with `deployer up`"
            )
        return chunk


def ship(source: Target, run: Run) -> ArtifactDigests:
    """Make the source stage's artifact for the version the target's too: copied and verified, or found already
    copied (the same sha256). Other bytes under that key in the target's bucket are refused (versions are
    immutable)."""
    published = artifact.published_artifact(source)
    target, key = run.target, run.target.artifact_key
    found = artifact.head(target, key)
    if found is not None:
        artifact.check_owner(target, found, key)
        if artifact.sha256_of(found) == published.sha256:
            return published
        raise DeployerError(
            f"s3://{target.config.bucket}/{key} already holds other bytes (sha256 "
            f"{(artifact.sha256_of(found) or 'unknown')[:12]}) than stage {source.config.stage}'s version "
            f"{target.version} ({published.sha256[:12]}); versions are immutable: publish a new version"
        )
    note = unfinished_note(run.config.root / ".deployer", run.config.bucket, local=target.local_endpoint is not None)
    finish_if_unfinished(run.aws, run.config.bucket, note)
    try:
        _copy(source, target, published)
    except ClientError as error:
        if not is_no_such_bucket(error):
            raise
        make_bucket(run.aws, run.config.bucket, note)  # the target's bucket is new: private and encrypted first
        _copy(source, target, published)
    return published


def _copy(source: Target, target: Target, published: ArtifactDigests) -> None:
    from boto3.s3.transfer import TransferConfig

    key = target.artifact_key
    name = f"s3://{source.config.bucket}/{key}"
    answer = source.aws.s3.get_object(Bucket=source.config.bucket, Key=key)
    body = VerifiedStream(answer["Body"], int(answer["ContentLength"]), published.sha256, name)
    metadata = {
        "app": target.config.app_name,
        "sha256": published.sha256,
        "content-sha256": published.content_sha256,
    }
    try:
        target.aws.s3.upload_fileobj(
            body,
            target.config.bucket,
            key,
            # S3 checks each part's (or the single object's) SHA-256 as it arrives
            ExtraArgs={"ContentType": "application/zip", "ChecksumAlgorithm": "SHA256", "Metadata": metadata},
            Config=TransferConfig(multipart_threshold=artifact.MULTIPART_THRESHOLD, max_concurrency=MAX_CONCURRENCY),
        )
    finally:
        answer["Body"].close()
