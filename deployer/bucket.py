"""The bucket deployer keeps artifacts in (and, by default, the shared state): created private and encrypted.

Two callers make it, whichever finds it missing first: the shared state's lock (remote_state.py) and the
artifact's upload (resources/artifact.py). Both use this module and its one note of an unfinished bucket.

Between CreateBucket and the last of its settings a run may die. A note on this machine, the file
`.deployer/unfinished-bucket-<bucket>`, is written before CreateBucket and removed once the bucket is private
and encrypted, so that the next run finishes the settings of a bucket it made; a bucket found without a note is
never ours to change. The note is a file, not a field of the state, because the state may live in that very
bucket: it cannot record anything before the bucket exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from deployer.aws import S3_BUCKET_OURS_ALREADY, S3_BUCKET_TAKEN, error_code
from deployer.errors import DeployerError

if TYPE_CHECKING:
    from deployer.aws import Aws

ABORT_UPLOADS_AFTER_DAYS = 1  # the lifecycle rule of the bucket deployer makes, for uploads nobody comes back to


def unfinished_note(folder: Path, bucket: str, *, local: bool = False) -> Path:
    """Where the note "this run is making `bucket`" is kept: in `folder` (the project's `.deployer/`). The local
    cloud's bucket of the same name is another bucket, with a note of its own."""
    return folder / f"unfinished-{'local-' if local else ''}bucket-{bucket}"


def finish_if_unfinished(aws: Aws, bucket: str, note: Path | None) -> None:
    """A run that died after creating the bucket, before making it private and encrypted, left its note:
    finish the settings."""
    if note is not None and note.exists():
        make_bucket(aws, bucket, note)


def make_bucket(aws: Aws, bucket: str, note: Path | None) -> None:
    """Create the bucket in the client's region, block public access, encrypt by default, abort incomplete
    uploads after a day. Called when S3 said the bucket is missing, or when our note says a run of ours made it:
    a bucket that exists already (BucketAlreadyOwnedByYou) then gets its settings.

    When S3 refuses to create it (someone else's name, no permission), the note goes first: no later run takes
    that bucket for ours and rewrites its settings. (Killed during CreateBucket, the note stays: the bucket may
    be ours.)"""
    if note is not None:
        note.parent.mkdir(parents=True, exist_ok=True)
        note.touch()
    options: dict[str, Any] = {}
    if aws.region != "us-east-1":  # us-east-1 refuses an explicit location constraint
        options["CreateBucketConfiguration"] = {"LocationConstraint": aws.region}
    try:
        aws.s3.create_bucket(Bucket=bucket, **options)
    except ClientError as error:
        if error_code(error) != S3_BUCKET_OURS_ALREADY:
            _forget(note)
            if error_code(error) == S3_BUCKET_TAKEN:
                raise not_yours(bucket) from None
            raise
    aws.s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    aws.s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    aws.s3.put_bucket_lifecycle_configuration(  # the parts of an upload killed half-way go after a day
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "deployer-abort-incomplete-uploads",
                    "Filter": {"Prefix": ""},
                    "Status": "Enabled",
                    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_UPLOADS_AFTER_DAYS},
                }
            ]
        },
    )
    _forget(note)


def _forget(note: Path | None) -> None:
    if note is not None:
        note.unlink(missing_ok=True)


def not_yours(bucket: str) -> DeployerError:
    return DeployerError(
        f"bucket {bucket} exists but belongs to another AWS account (or you may not use it); "
        "choose another [artifact] bucket name"
    )
