"""The two kinds of failure the CLI turns into exit codes: 1 the operation failed, 2 bad usage (README, "Commands")."""


class DeployerError(Exception):
    """The operation failed: AWS said no, or a check failed. Exit code 1."""

    exit_code = 1


class UsageError(DeployerError):
    """Bad usage or bad configuration, found before anything changed. Exit code 2."""

    exit_code = 2
