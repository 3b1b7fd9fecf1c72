"""One sha256, two spellings: the hex this tool prints and stores, and Lambda's CodeSha256 (base64).

Standard library only, so that what reads a function's CodeSha256 without boto3 (the local cloud's
data plane) and what compares it with an artifact (deployer/resources/function.py) spell it alike.
"""

from __future__ import annotations

import base64


def lambda_sha256(hex_digest: str) -> str:
    """Lambda reports CodeSha256 as the base64 of the digest, not hex."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def hex_sha256(lambda_digest: str) -> str:
    """The hex spelling of a CodeSha256 as Lambda reports it."""
    return base64.b64decode(lambda_digest).hex()
