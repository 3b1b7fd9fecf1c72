"""`deployer ci github`: the GitHub Actions workflow that plans pull requests and deploys the main branch.

Pull requests run `deployer plan` with the read-only plan role; exit 3 ("up would change something") is not a
failure: the changes become the job's summary. Pushes to the main branch run `deployer up --version V` with the
deploy role, V being the tag on the pushed commit, else its short sha. Credentials come from GitHub's OIDC token
through aws-actions/configure-aws-credentials: no stored keys. Deploys of a stage queue in one concurrency group,
never cancelled half-way.

The file carries a first line saying deployer wrote it: a file without it is the user's, replaced only with
--force. Standard library only.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from deployer.ci import MAIN_BRANCH
from deployer.config import Config
from deployer.errors import UsageError

WORKFLOW_PATH = Path(".github/workflows/deployer.yml")
MARKER = "# Written by `deployer ci github`."
READ_LIMIT = 4096  # enough to find the marker on the first line of a file found in the way
PYTHON_FALLBACK = "3.13"  # the Python that runs deployer when the function is not Python
SAFE_PATH = re.compile(r"[A-Za-z0-9._/-]{1,200}")


@dataclass(frozen=True)
class Workflow:
    """What the workflow needs to know; every field checked before it is put in the file."""

    stage: str
    region: str
    deploy_role_arn: str
    plan_role_arn: str
    config_path: str  # deploy.toml, relative to the repository's root (the workflow's working directory)
    install: str  # what `pip install` is given to install deployer
    runtime: str


def repository_root(config: Config) -> Path:
    """The git repository holding deploy.toml (its nearest folder with a .git), else deploy.toml's folder."""
    start = config.root.resolve()
    return next((folder for folder in (start, *start.parents) if (folder / ".git").exists()), start)


def config_path_in(config: Config, root: Path) -> str:
    relative = config.path.resolve().relative_to(root).as_posix()
    if not SAFE_PATH.fullmatch(relative) or ".." in relative.split("/"):
        raise UsageError(
            f"deploy.toml's path in the repository, {relative[:200]!r}, has characters a workflow should not quote: "
            "rename its folders to letters, digits, '.', '_', '-'"
        )
    return relative


def default_install(root: Path) -> str | None:
    """How README installs deployer: `pip install .` from this project's checkout. None when the repository is
    not this project (the user says how, with --install)."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return None
    import tomllib

    try:
        with pyproject.open("rb") as file:
            name = tomllib.load(file).get("project", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return "." if name == "deployer" else None


def check_install(text: str) -> str:
    if not text.strip() or not text.isprintable() or len(text) > 500:
        raise UsageError("--install takes one line for `pip install`, e.g. --install 'deployer @ git+https://...'")
    return text


def _python_version(runtime: str) -> str:
    return runtime.removeprefix("python") if runtime.startswith("python3.") else PYTHON_FALLBACK


def _node_setup(runtime: str) -> str:
    """JavaScript functions install their dependencies with npm: the runtime's Node.js."""
    if not runtime.startswith("nodejs"):
        return ""
    major = runtime.removeprefix("nodejs").removesuffix(".x")
    return f"""      - uses: actions/setup-node@v4
        with:
          node-version: "{major}"
"""


def render(workflow: Workflow) -> str:
    """The workflow file's text. Values go in as YAML double-quoted strings (JSON's, which YAML reads alike) and
    into shell as single words; GitHub's expressions reach the scripts through env, never spliced into them."""
    stage = workflow.stage
    config_option = "" if workflow.config_path == "deploy.toml" else f" --config {shlex.quote(workflow.config_path)}"
    install = shlex.quote(workflow.install)
    setup = f"""      - uses: actions/setup-python@v5
        with:
          python-version: "{_python_version(workflow.runtime)}"
{_node_setup(workflow.runtime)}      - name: Install deployer
        run: python -m pip install {install}
"""

    def credentials(role: str) -> str:
        return f"""      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: {json.dumps(role)}
          aws-region: {json.dumps(workflow.region)}
"""

    return f"""{MARKER} Run it again to rewrite this file; remove this line to keep your edits.
# Pull requests: `deployer plan` (read-only role); pushes to {MAIN_BRANCH}: `deployer up` (deploy role).
# The roles are made by `deployer ci bootstrap --stage {stage} --repo OWNER/NAME`. No stored keys: GitHub's OIDC.
name: deployer {stage}

on:
  pull_request:
    branches: [{MAIN_BRANCH}]
  push:
    branches: [{MAIN_BRANCH}]

permissions:
  id-token: write  # GitHub's OIDC token, exchanged for the role's credentials
  contents: read

jobs:
  plan:
    if: github.event_name == 'pull_request'
    runs-on: ubuntu-latest
    concurrency:
      group: deployer-{stage}-plan-${{{{ github.event.pull_request.number }}}}
      cancel-in-progress: true  # plan only reads: a newer commit's plan replaces it
    steps:
      - uses: actions/checkout@v4
{setup}{credentials(workflow.plan_role_arn)}      - name: deployer plan
        env:
          HEAD_SHA: ${{{{ github.event.pull_request.head.sha }}}}
        run: |
          # Exit 3 means "up would change something": the changes become the job's summary, not a failure.
          status=0
          deployer plan --stage {stage} --version "${{HEAD_SHA::7}}"{config_option} 2> plan.txt || status=$?
          cat plan.txt
          if [ "$status" -eq 3 ]; then
            {{
              echo "### deployer plan: stage {stage} would change"
              echo
              echo '~~~~'
              cat plan.txt
              echo '~~~~'
            }} >> "$GITHUB_STEP_SUMMARY"
          elif [ "$status" -eq 0 ]; then
            echo "### deployer plan: stage {stage} is up to date" >> "$GITHUB_STEP_SUMMARY"
          else
            exit "$status"
          fi

  deploy:
    if: github.event_name == 'push'
    runs-on: ubuntu-latest
    concurrency:
      group: deployer-{stage}
      cancel-in-progress: false  # never stop a deploy half-way; the next one waits its turn
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0  # the tags, for the version
{setup}{credentials(workflow.deploy_role_arn)}      - name: deployer up
        run: |
          # The version: the tag on the pushed commit, else its short sha.
          version="$(git tag --points-at HEAD --sort=-version:refname | head -n 1)"
          version="${{version:-${{GITHUB_SHA::7}}}}"
          deployer up --stage {stage} --version "$version"{config_option}
"""


def _head(path: Path, size: int) -> bytes:
    with path.open("rb") as file:
        return file.read(size)


def write(path: Path, text: str, force: bool) -> str:
    """Write the workflow at `path`, refusing to replace a file deployer did not write unless `force`. What was
    done: "created", "updated", "unchanged" or "replaced"."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UsageError(f"{path} is not a plain file: move it aside, then run this again")
    action = "created"
    if path.exists():
        wanted = text.encode()
        if _head(path, len(wanted) + 1) == wanted:
            return "unchanged"
        if not _head(path, READ_LIMIT).startswith(MARKER.encode()):
            if not force:
                raise UsageError(f"{path} exists and deployer did not write it: pass --force to replace it")
            action = "replaced"
        else:
            action = "updated"
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(text, encoding="utf-8")
    scratch.replace(path)
    return action
