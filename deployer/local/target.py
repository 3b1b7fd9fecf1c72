"""`--local`: the same commands, the same AWS calls, pointed at the local cloud instead of an account.

What differs from a real deployment, and only this:
- the endpoint is `http://127.0.0.1:{port}` (DEPLOYER_LOCAL_PORT, default 4566), and the emulator is
  started when it is not running;
- requests are signed with the credentials the local cloud wrote at start, readable by its user only
  (auth.py): it answers no one else. A new user has no AWS account, and a `--local` command never reads
  your AWS profile (resolving one can call STS or SSO on real AWS);
- the region is deploy.toml's `[app] region`, else us-east-1;
- the state is the local cloud's own, apart from a real deployment's: in the local cloud's S3 (the shared
  state, by default), or `.deployer/local-{function}.json` with `[state] backend = "local"` (stores.py);
- the URL printed and stored is the local data plane's (Connection.local_endpoint).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deployer.config import Config
from deployer.context import Connection
from deployer.errors import DeployerError, UsageError
from deployer.local import HOST, credentials_path, endpoint, resolve_port
from deployer.local.auth import Credentials, read_credentials
from deployer.local.control import start
from deployer.stores import store_for

if TYPE_CHECKING:
    from deployer.retry import Waits

DEFAULT_REGION = "us-east-1"


def local_credentials(port: int, pid: int | None = None) -> Credentials:
    """The credentials of the local cloud on `port` (and, given its pid, of that very process)."""
    found = read_credentials(port)
    if found is None or (pid is not None and found.pid != pid):
        raise DeployerError(
            f"the local cloud on port {port} wrote no credentials to {credentials_path(port)} "
            "(an older or another one?); restart it: deployer local stop, then deployer local start"
        )
    return found


def session(region: str, port: int | None = None, pid: int | None = None) -> Any:
    """A boto3 Session with the local cloud's credentials (DEPLOYER_LOCAL_PORT's, else 4566's), nothing else.

    The credential chain is never consulted: an AWS_PROFILE naming a missing, SSO or assume-role profile stays unused.
    """
    import boto3
    import botocore.session

    credentials = local_credentials(resolve_port() if port is None else port, pid)
    core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    core.set_credentials(credentials.access_key_id, credentials.secret_access_key)
    return boto3.Session(botocore_session=core, region_name=region)


def check_emulated_region(region: str) -> None:
    """The local cloud emulates the regions AWS has (botocore's list, in every partition); in any other, its
    services would answer 500 to every call."""
    import botocore.session

    core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    for service in ("lambda", "apigateway"):
        known = {
            name
            for partition in core.get_available_partitions()
            for name in core.get_available_regions(service, partition_name=partition)
        }
        if region not in known:
            raise UsageError(
                f"region {region!r} is not an AWS region the local cloud emulates (such as us-east-1): fix [app] "
                "region in deploy.toml"
            )


def _bypass_proxies() -> None:
    """Requests to 127.0.0.1 go straight there, whatever HTTP(S)_PROXY says."""
    for name in ("NO_PROXY", "no_proxy"):
        current = [item for item in os.environ.get(name, "").split(",") if item.strip()]
        if HOST not in current:
            os.environ[name] = ",".join([*current, HOST])


def local_connection(config: Config, log: Callable[[str], None], waits: Waits | None = None) -> Connection:
    """A Connection to the local cloud, the emulator started if needed; its calls wait with `waits`."""
    from deployer.aws import Aws

    region = config.region or DEFAULT_REGION
    check_emulated_region(region)
    port = resolve_port()
    emulator, started = start(port, log=log)
    if started:
        log(f"local cloud running on {emulator.url} (pid {emulator.pid}); `deployer local stop` stops it")
    _bypass_proxies()
    aws = Aws(region, endpoint(port), session=session(region, port, emulator.pid), waits=waits)
    return Connection(config, aws, store_for(config, aws, local=True), local_endpoint=endpoint(port))
