"""`deployer serve`'s secrets: values from a dotenv file, never from an AWS account.

[function.secrets] names references that `up` reads from SSM or Secrets Manager; serve runs on a laptop and
must never read a real account's secret, so each referenced variable takes its value from `.env` beside
deploy.toml (or the file given). A referenced variable without a value there is exit 2, naming it.

The format, kept small: `NAME=value` lines, `export ` allowed before the name, `#` comments and blank lines
skipped, a value in matching single or double quotes taken as it is inside them.
"""

from __future__ import annotations

import re
from pathlib import Path

from deployer.config import Config
from deployer.errors import UsageError

ENV_FILE = ".env"
SIZE_LIMIT = 1024 * 1024  # a dotenv file is small: a larger one is not one
LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*")


def read_env_file(path: Path) -> dict[str, str]:
    """The file's NAME=value pairs; a malformed line is a UsageError naming its number (never its text)."""
    try:
        with path.open("rb") as file:
            data = file.read(SIZE_LIMIT + 1)
    except OSError as error:
        raise UsageError(f"{path}: cannot read it ({error.strerror}); fix --env-file") from None
    if len(data) > SIZE_LIMIT:
        raise UsageError(f"{path} is over {SIZE_LIMIT} bytes: not a dotenv file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        found = LINE.fullmatch(line)
        if found is None:
            raise UsageError(f"{path}, line {number}: not NAME=value; fix it (its text is not shown: it may be secret)")
        name, value = found.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def secret_values(config: Config, env_file: Path | None = None) -> dict[str, str]:
    """Each [function.secrets] variable's value for serve, from `env_file` (default: .env beside deploy.toml)."""
    if not config.secrets:
        return {}
    path = env_file or config.root / ENV_FILE
    if env_file is None and not path.is_file():
        found: dict[str, str] = {}
    else:
        found = read_env_file(path)
    missing = sorted(name for name in config.secrets if name not in found)
    if missing:
        raise UsageError(
            f"{missing[0]} is a secret ({config.secrets[missing[0]]}) with no value for serve: add {missing[0]}=... to "
            f"{path} (serve never reads an AWS account's secrets)"
        )
    return {name: found[name] for name in config.secrets}
