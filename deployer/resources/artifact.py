"""The code artifact: `s3://{bucket}/v{version}/{name}`, immutable once published.

The sha256 of the zip and of its content are stored with the object (metadata `sha256`,
`content-sha256`), so a second `up` of the same version compares without downloading; different
content under a published version is refused. The content digest ignores compression, so the same
source built where zlib compresses differently is still the same version.
The bucket is created on the first upload that finds it missing: private and encrypted.
"""

from __future__ import annotations

import base64
from typing import Any

from botocore.exceptions import ClientError

from deployer.context import Change, Context
from deployer.errors import DeployerError
from deployer.retry import error_code

NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
FORBIDDEN = {"403", "AccessDenied", "Forbidden", "AllAccessDisabled"}


def _not_yours(bucket: str) -> DeployerError:
    return DeployerError(
        f"bucket {bucket} exists but belongs to another AWS account (or you may not use it); "
        "choose another [artifact] bucket name"
    )


def head(ctx: Context, key: str) -> dict[str, Any] | None:
    """The object's metadata, or None when it (or its bucket) does not exist."""
    bucket = ctx.config.bucket
    try:
        return ctx.aws.s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error_code(error) in NOT_FOUND:
            return None
        if error_code(error) in FORBIDDEN:
            raise _forbidden(ctx) from None
        raise


def _forbidden(ctx: Context) -> DeployerError:
    """S3 answers 403 for someone else's bucket, and for your own when you lack a permission
    (a missing key without s3:ListBucket is a 403 too): HeadBucket tells them apart."""
    try:
        ctx.aws.s3.head_bucket(Bucket=ctx.config.bucket)
    except ClientError:
        return _not_yours(ctx.config.bucket)
    return DeployerError(
        f"you may not use s3://{ctx.config.bucket}/v*/{ctx.config.artifact_name}: your credentials need "
        "s3:GetObject, s3:PutObject and s3:ListBucket on that bucket"
    )


def published_versions(ctx: Context) -> list[str]:
    """The versions whose artifact is in the bucket, oldest name first."""
    versions = []
    paginator = ctx.aws.s3.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=ctx.config.bucket, Prefix="v"):
            for item in page.get("Contents", []):
                prefix, _, name = item["Key"].partition("/")
                if name == ctx.config.artifact_name:
                    versions.append(prefix[1:])
    except ClientError as error:
        if error_code(error) not in NOT_FOUND:
            raise
    return sorted(versions)


def sha256_of(head_response: dict[str, Any]) -> str | None:
    return head_response.get("Metadata", {}).get("sha256")


class Artifact:
    resource = "artifact"

    def plan(self, ctx: Context) -> Change:
        name = f"s3://{ctx.config.bucket}/{ctx.artifact_key}"
        found = head(ctx, ctx.artifact_key)
        if found is None:
            return Change(self.resource, name, "create")
        published = sha256_of(found)
        published_content = found.get("Metadata", {}).get("content-sha256")
        if published == ctx.artifact_sha256 or (published_content and published_content == ctx.artifact_content_sha256):
            # The same content, maybe compressed by another zlib: deploy the bytes already in S3.
            ctx.artifact_sha256 = published or ctx.artifact_sha256
            return Change(self.resource, name, "unchanged")
        if not ctx.force:
            raise DeployerError(
                f"version {ctx.version} is already published with different bytes ({name}, sha256 "
                f"{(published or 'unknown')[:12]}, yours {ctx.artifact_sha256 and ctx.artifact_sha256[:12]}); "
                "versions are immutable: pick a new version, or pass --force to replace it"
            )
        return Change(self.resource, name, "update", {"sha256": (published, ctx.artifact_sha256)})

    def apply(self, ctx: Context, change: Change) -> None:
        if ctx.state.unfinished_bucket == ctx.config.bucket:
            create_bucket(ctx)  # a run died after creating the bucket, before making it private and encrypted
        try:
            self._upload(ctx)
        except ClientError as error:
            if error_code(error) != "NoSuchBucket":
                raise
            create_bucket(ctx)
            self._upload(ctx)

    def _upload(self, ctx: Context) -> None:
        assert ctx.artifact_sha256 is not None
        from deployer.build import artifact_path

        checksum = base64.b64encode(bytes.fromhex(ctx.artifact_sha256)).decode()
        try:
            with artifact_path(ctx.config).open("rb") as body:
                ctx.aws.s3.put_object(
                    Bucket=ctx.config.bucket,
                    Key=ctx.artifact_key,
                    Body=body,
                    ContentType="application/zip",
                    ChecksumSHA256=checksum,  # S3 refuses the upload if the bytes arrive damaged
                    Metadata={"sha256": ctx.artifact_sha256, "content-sha256": ctx.artifact_content_sha256 or ""},
                )
        except ClientError as error:
            if error_code(error) in FORBIDDEN:
                raise _forbidden(ctx) from None
            raise


def create_bucket(ctx: Context) -> None:
    """A private, encrypted bucket in the app's region; safe to run again on a bucket it created."""
    s3, bucket = ctx.aws.s3, ctx.config.bucket
    options: dict[str, Any] = {}
    if ctx.aws.region != "us-east-1":  # us-east-1 refuses an explicit location constraint
        options["CreateBucketConfiguration"] = {"LocationConstraint": ctx.aws.region}
    # Noted before the bucket exists, cleared once it is private and encrypted: a run killed in between
    # leaves the note, and the next run finishes the settings (a bucket found later is never ours to change).
    ctx.state.unfinished_bucket = bucket
    ctx.save()
    try:
        s3.create_bucket(Bucket=bucket, **options)
    except ClientError as error:
        if error_code(error) == "BucketAlreadyExists":
            raise _not_yours(bucket) from None
        if error_code(error) != "BucketAlreadyOwnedByYou":
            raise
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    ctx.state.unfinished_bucket = None
    ctx.save()
