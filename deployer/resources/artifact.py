"""The code artifact: `s3://{bucket}/v{version}/{name}`, immutable once published.

The key is `v{version}/<app>.zip` unless `[artifact] name` names the zip. The app that uploaded it, the
sha256 of the zip and of its content are stored with the object (metadata `app`, `sha256`,
`content-sha256`): another app's object under the same key is never used nor replaced, and a second
`up` of the same version compares without downloading; different content under a published version is
refused. The content digest ignores compression, so the same
source built where zlib compresses differently is still the same version.
The bucket is created on the first upload that finds it missing: private and encrypted (deployer/bucket.py).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from deployer.aws import (
    is_access_denied,
    is_no_such_bucket,
    is_not_found,
    read_or_none,
)
from deployer.bucket import finish_if_unfinished, make_bucket, not_yours, unfinished_note
from deployer.config import Config
from deployer.context import ArtifactDigests, Run, Target
from deployer.errors import DeployerError
from deployer.plan import Change, Diff, Plan
from deployer.read_ahead import Read

MULTIPART_THRESHOLD = 16 * 1024 * 1024  # from this size on, S3's managed transfer: in parts, concurrent
# A multipart upload of ours begun this long ago and never finished belongs to a run that was killed (another
# stage's run may be uploading a newer one right now): `up` and `down` abort it. S3 keeps its parts, and bills
# them, forever otherwise.
STALE_UPLOAD = timedelta(hours=1)


class Field(StrEnum):
    SHA256 = "sha256"  # different bytes under a published version (replaced only with --force)


@dataclass(frozen=True)
class Observed:
    """The digest of the bytes the function will run: ours, or the same content already in S3."""

    sha256: str


def head_read(config: Config, key: str) -> Read:
    """The read of an artifact's metadata (`head`): one a plan makes, sent ahead."""
    return Read("s3", "HeadObject", {"Bucket": config.bucket, "Key": key})


def head(target: Target, key: str) -> dict[str, Any] | None:
    """The object's metadata, or None when it (or its bucket) does not exist."""
    try:
        return read_or_none(lambda: target.aws.s3.head_object(Bucket=target.config.bucket, Key=key))
    except ClientError as error:
        if is_access_denied(error):
            raise _forbidden(target) from None
        raise


def _forbidden(target: Target) -> DeployerError:
    """S3 answers 403 for someone else's bucket, and for your own when you lack a permission
    (a missing key without s3:ListBucket is a 403 too): HeadBucket tells them apart."""
    config = target.config
    try:
        target.aws.s3.head_bucket(Bucket=config.bucket)
    except ClientError:
        return not_yours(config.bucket)
    return DeployerError(
        f"you may not use s3://{config.bucket}/v*/{config.artifact_name}: your credentials need "
        "s3:GetObject, s3:PutObject and s3:ListBucket on that bucket"
    )


def published_versions(target: Target) -> list[str]:
    """The versions whose artifact is in the bucket, oldest name first."""
    versions = []
    paginator = target.aws.s3.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=target.config.bucket, Prefix="v"):
            for item in page.get("Contents", []):
                prefix, _, name = item["Key"].partition("/")
                if name == target.config.artifact_name:
                    versions.append(prefix[1:])
    except ClientError as error:
        if not is_not_found(error):
            raise
    return sorted(versions)


def sha256_of(head_response: dict[str, Any]) -> str | None:
    return head_response.get("Metadata", {}).get("sha256")


def check_owner(target: Target, head_response: dict[str, Any], key: str) -> None:
    """An object another app uploaded is not ours to deploy nor to replace, --force or not (an object from
    before deployer recorded its app has no owner on record: it is taken as ours)."""
    owner = head_response.get("Metadata", {}).get("app")
    if owner is not None and owner != target.config.app_name:
        raise DeployerError(
            f"s3://{target.config.bucket}/{key} belongs to app {owner}, not {target.config.app_name}: give "
            "[artifact] name a name of your own, or leave it out (the default is <app>.zip)"
        )


def published_artifact(target: Target) -> ArtifactDigests:
    """The artifact already in S3 for the target's version, as it was uploaded: what promote ships.
    A version never uploaded is refused, naming the ones that were."""
    found = head(target, target.artifact_key)
    if found is not None:
        check_owner(target, found, target.artifact_key)
    published = sha256_of(found) if found else None
    if found is None or published is None:
        versions = published_versions(target)
        listing = ", ".join(versions) if versions else "none"
        raise DeployerError(
            f"version {target.version} was never uploaded (no s3://{target.config.bucket}/{target.artifact_key}); "
            f"published versions: {listing}"
        )
    return ArtifactDigests(published, found.get("Metadata", {}).get("content-sha256") or "")


class ArtifactObject:
    """The artifact's S3 object: uploaded once per version (the bucket made first where it is missing)."""

    resource = "artifact"
    reads: tuple[type, ...] = ()
    needs: tuple[type, ...] = ()  # the upload goes out with the role and the API's wiring

    def ahead(self, target: Target) -> tuple[Read, ...]:
        if target.keep_live or target.artifact is None:
            return ()
        return (head_read(target.config, target.artifact_key),)

    def plan(self, target: Target, earlier: Plan) -> Change[Observed]:
        if target.keep_live:  # converting: what runs now stays as it is, nothing is uploaded
            return Change(self.resource, "(what runs now)", "unchanged")
        assert target.artifact is not None, "up and plan build the artifact first"
        ours = target.artifact
        name = f"s3://{target.config.bucket}/{target.artifact_key}"
        found = head(target, target.artifact_key)
        if found is None:
            return Change(self.resource, name, "create", observed=Observed(ours.sha256))
        check_owner(target, found, target.artifact_key)
        published = sha256_of(found)
        published_content = found.get("Metadata", {}).get("content-sha256")
        if published == ours.sha256 or (published_content and published_content == ours.content_sha256):
            # The same content, maybe compressed by another zlib: deploy the bytes already in S3.
            return Change(self.resource, name, "unchanged", observed=Observed(published or ours.sha256))
        if not target.force:
            raise DeployerError(
                f"version {target.version} is already published with different bytes ({name}, sha256 "
                f"{(published or 'unknown')[:12]}, yours {ours.sha256[:12]}); "
                "versions are immutable: pick a new version, or pass --force to replace it"
            )
        return Change(
            self.resource, name, "update", (Diff(Field.SHA256, published, ours.sha256),), observed=Observed(ours.sha256)
        )

    def apply(self, run: Run, change: Change[Observed]) -> None:
        note = _bucket_note(run)
        finish_if_unfinished(run.aws, run.config.bucket, note)
        try:
            self._upload(run)
        except ClientError as error:
            if not is_no_such_bucket(error):
                raise
            make_bucket(run.aws, run.config.bucket, note)
            self._upload(run)
        # An unfinished upload of this very key is a killed run's (we hold the lock, and ours is complete): abort
        # it, and our stale ones. After the upload, so that a missing bucket costs no extra call.
        abort_unfinished_uploads(run, also=run.target.artifact_key)

    def _upload(self, run: Run) -> None:
        from deployer.build import artifact_path, read_verified

        artifact, config = run.target.artifact, run.config
        assert artifact is not None
        # The bytes planned, read once and checked: a zip changed in dist/ since the plan is refused.
        body = read_verified(artifact_path(config), artifact.sha256)
        metadata = {"app": config.app_name, "sha256": artifact.sha256, "content-sha256": artifact.content_sha256}
        try:
            if len(body) >= MULTIPART_THRESHOLD:
                _managed_upload(run, body, metadata)
                return
            run.aws.s3.put_object(
                Bucket=config.bucket,
                Key=run.target.artifact_key,
                Body=body,
                ContentType="application/zip",
                # S3 refuses the upload if the bytes arrive damaged
                ChecksumSHA256=base64.b64encode(bytes.fromhex(artifact.sha256)).decode(),
                Metadata=metadata,
            )
        except ClientError as error:
            if is_access_denied(error):
                raise _forbidden(run.target) from None
            raise


def _managed_upload(run: Run, body: bytes, metadata: dict[str, str]) -> None:
    """A large artifact goes through S3's managed transfer: in parts, several at once, each part's SHA-256
    checked by S3, its progress reported to the run's Waits.on_upload_progress (bytes sent, total)."""
    from boto3.s3.transfer import TransferConfig

    sent = 0

    def progress(chunk: int) -> None:
        nonlocal sent
        sent += chunk
        run.aws.waits.on_upload_progress(sent, len(body))

    run.aws.s3.upload_fileobj(
        io.BytesIO(body),
        run.config.bucket,
        run.target.artifact_key,
        ExtraArgs={"ContentType": "application/zip", "ChecksumAlgorithm": "SHA256", "Metadata": metadata},
        Config=TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, max_concurrency=4),
        Callback=progress,
    )


def _bucket_note(run: Run) -> Path:
    """The note of a bucket being made, beside the local state (the state itself may live in that bucket)."""
    return unfinished_note(
        run.config.root / ".deployer", run.config.bucket, local=run.target.local_endpoint is not None
    )


def abort_unfinished_uploads(run: Run, also: str | None = None) -> list[str]:
    """Abort the multipart uploads of this app's artifacts (`v*/<artifact name>`) begun more than STALE_UPLOAD
    ago, and any of the key `also`; the keys aborted. Another app's uploads are never touched."""
    s3, bucket, name = run.aws.s3, run.config.bucket, run.config.artifact_name
    stale_before = datetime.now(UTC) - STALE_UPLOAD
    aborted = []
    try:
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix="v"):
            for upload in page.get("Uploads", []):
                key = upload["Key"]
                version, _, file = key.partition("/")
                if file != name or not version[1:] or (key != also and upload["Initiated"] > stale_before):
                    continue
                read_or_none(partial(s3.abort_multipart_upload, Bucket=bucket, Key=key, UploadId=upload["UploadId"]))
                aborted.append(key)
    except ClientError as error:
        if not (is_not_found(error) or is_access_denied(error)):
            raise  # no bucket, or no s3:ListBucketMultipartUploads: nothing we can clean up here
    return aborted
