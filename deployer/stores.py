"""Which state store a command works with: the shared one in S3 (remote_state.py), or the local file (state.py).

Its own module, above both stores, so that neither store imports the other's module to be chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployer.state import LocalStateStore, StateStore

if TYPE_CHECKING:
    from deployer.aws import Aws
    from deployer.config import Config


def state_name(config: Config, local: bool = False) -> str:
    """What names a stage's state (and the files kept beside it): the stage's function's name, with a local-cloud
    deployment's apart."""
    return f"local-{config.function_name}" if local else config.function_name


def store_for(config: Config, aws: Aws | None = None, *, local: bool = False) -> StateStore:
    """One state per stage of the app, named like the stage's function (the app's name on the default
    stage): in S3 (the artifact bucket, or [state] bucket) unless [state] backend is "local". A
    local-cloud deployment (`--local`) keeps its own, apart from the real one (in the local cloud's S3)."""
    folder = config.root / ".deployer"
    files = LocalStateStore(folder, state_name(config, local), config.app_name)
    if config.state_backend == "local":
        return files
    if aws is None:
        raise ValueError("the shared state needs the AWS connection")
    # botocore comes with these: imported only for the shared state, so `status` on a local state starts fast
    from deployer.bucket import unfinished_note
    from deployer.remote_state import S3StateStore

    bucket = config.state_bucket or config.bucket
    key_prefix = f"{config.state_prefix}{config.app_name}/{config.stage}/"
    note = unfinished_note(folder, bucket, local=local)
    return S3StateStore(aws, bucket, key_prefix, config.app_name, legacy=files, bucket_note=note)
