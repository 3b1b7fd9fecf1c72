"""Install a function's declared dependencies for Lambda's platform, cached by everything they depend on.

Python: `<source>/requirements.txt`, installed with pip for Lambda's manylinux platform (binary wheels, plus
source distributions that build a pure-Python wheel). Node: `<source>/package.json`, production dependencies
installed with npm in a scratch copy. The result lives in `<cache_root>/dependencies/<key>/`, where the key hashes
the manifest files, the runtime, the architecture and FORMAT_VERSION; a hit runs neither pip nor npm. An entry is
written by renaming a finished scratch folder into place, so an interrupted install never leaves half of one.

When pip finds no distribution for a requirement, its log tells why, and each reason has its own message: the
project is not on the index at all (a typo), the index could not be reached, or the project is there but has no
wheel for Lambda (then a pure-Python source distribution is built, or the requirement is refused).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from deployer.config import Config
from deployer.errors import DeployerError, UsageError

# Bump when the layout of a cache entry changes, so old entries are not reused.
FORMAT_VERSION = "1"
PYTHON_MANIFESTS = ("requirements.txt",)
NODE_MANIFESTS = ("package.json", "package-lock.json", "npm-shrinkwrap.json", ".npmrc")
# Newest glibc of each runtime's OS: python3.11 runs on Amazon Linux 2 (2.26), the others on Amazon Linux 2023 (2.34).
GLIBC_MINOR = {"python3.11": 26}
DEFAULT_GLIBC_MINOR = 34
MAX_SOURCE_BUILDS = 20
STALE_SCRATCH_SECONDS = 3600

Log = Callable[[str], None]


def folder_blocker(folder: Path) -> Path | None:
    """The file (or dangling link) standing where `folder` or one of its parents must be a folder, if any."""
    for path in (*reversed(folder.parents), folder):
        if os.path.lexists(path) and not path.is_dir():
            return path
    return None


def make_folder(folder: Path, purpose: str) -> None:
    """mkdir -p, but a file standing in the way is named, with what to do, instead of failing on an OSError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = folder_blocker(folder) or folder
        raise UsageError(
            f"{blocker} is a file, but deployer keeps {purpose} in a folder there; "
            "move or delete that file, then run again"
        ) from None


def bundle_dependencies(config: Config, cache_root: Path, log: Log = lambda _: None) -> Path | None:
    """Install the function's declared dependencies for Lambda's platform into a cached folder and return it.

    The folder's CONTENTS go at the root of the zip (python: the packages as pip --target lays them out;
    node: a `node_modules/` folder). Returns None when the function declares no dependencies
    (no requirements.txt for python runtimes, no package.json for node runtimes)."""
    manifests = PYTHON_MANIFESTS if config.is_python else NODE_MANIFESTS
    if not (config.source / manifests[0]).is_file():
        return None
    entries = cache_root / "dependencies"
    folder = entries / f"{config.runtime}-{config.architecture}-{_cache_key(config, manifests)}"
    if folder.is_dir():
        log(f"dependencies: cached in {folder}")
        return folder
    make_folder(entries, "its dependency cache")
    _remove_stale_scratch(entries)
    scratch = Path(tempfile.mkdtemp(prefix=".scratch-", dir=entries))
    try:
        output = scratch / "out"
        output.mkdir()
        started = time.monotonic()
        if config.is_python:
            _install_python(config, output, scratch, log)
        else:
            _install_node(config, output, scratch, log)
        _strip_host_files(output)
        log(f"dependencies: installed in {time.monotonic() - started:.1f}s, cached in {folder}")
        try:
            output.rename(folder)
        except OSError:
            if not folder.is_dir():  # else another build finished the same entry first: use it
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _cache_key(config: Config, manifests: tuple[str, ...]) -> str:
    files = {
        name: hashlib.sha256((config.source / name).read_bytes()).hexdigest()
        for name in manifests
        if (config.source / name).is_file()
    }
    facts = {
        "format": FORMAT_VERSION,
        "runtime": config.runtime,
        "architecture": config.architecture,
        "files": files,
        "scripts": config.install_scripts,  # an install with npm's scripts is not one without
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32]


def _remove_stale_scratch(entries: Path) -> None:
    """Scratch folders of installs that were killed; a live install is never this old."""
    for scratch in entries.glob(".scratch-*"):
        with contextlib.suppress(OSError):  # another build may be removing it too
            if time.time() - scratch.stat().st_mtime > STALE_SCRATCH_SECONDS:
                shutil.rmtree(scratch, ignore_errors=True)


def _strip_host_files(folder: Path) -> None:
    """Remove what differs between hosts or installs and that Lambda never uses."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.name == "__pycache__" and path.is_dir():
            shutil.rmtree(path)
        elif path.suffix == ".pyc" or (path.name == "direct_url.json" and path.parent.name.endswith(".dist-info")):
            path.unlink()
    # pip --target writes console scripts whose first line names this machine's python (and lists them in
    # RECORD as ../../bin/…); npm links its command-line tools into node_modules/.bin. Lambda runs neither.
    for tools in (folder / "bin", folder / "node_modules" / ".bin"):
        if tools.is_dir():
            shutil.rmtree(tools)
    for record in folder.glob("*.dist-info/RECORD"):
        lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not line.lstrip('"').startswith("../")]
        if kept != lines:
            record.write_text("".join(kept), encoding="utf-8")


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """pip or npm, out of reach of the caller's AWS credentials: a source build runs a package's setup.py, an npm
    install script runs any package's code. As serve's sandbox does for the function: no AWS_* variables, the
    shared files and the instance metadata closed, and a HOME of its own (empty), so `~/.aws` is not there.
    pip's and npm's own settings (a private index and its token) and caches stay where the user keeps them."""
    with tempfile.TemporaryDirectory(prefix="deployer-install-home-") as home:
        env = {**_install_environment(Path(home)), "PIP_USER": "0", "PIP_REQUIRE_VIRTUALENV": "0"}
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _install_environment(home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without a way to their AWS identity; `home` stands in for HOME."""
    base = dict(os.environ) if base is None else base
    real_home = Path(base.get("HOME") or Path.home())
    env = {name: value for name, value in base.items() if not name.startswith("AWS_")}
    env.update(
        HOME=str(home),
        USERPROFILE=str(home),
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    # Where pip and npm find the user's settings and caches under the real HOME (an explicit setting wins).
    env.setdefault("XDG_CONFIG_HOME", str(real_home / ".config"))
    env.setdefault("XDG_CACHE_HOME", str(real_home / ".cache"))
    if (real_home / ".pip" / "pip.conf").is_file():  # pip's legacy place for the user's file
        env.setdefault("PIP_CONFIG_FILE", str(real_home / ".pip" / "pip.conf"))
    env.setdefault("npm_config_userconfig", str(real_home / ".npmrc"))
    env.setdefault("npm_config_cache", str(real_home / ".npm"))
    return env


# ---- python ----------------------------------------------------------------------------------------------------


def _platform(config: Config) -> str:
    return f"manylinux {'aarch64' if config.architecture == 'arm64' else 'x86_64'}"


def _platform_options(config: Config) -> list[str]:
    machine = "aarch64" if config.architecture == "arm64" else "x86_64"
    newest = GLIBC_MINOR.get(config.runtime, DEFAULT_GLIBC_MINOR)
    # pip expands manylinux2014 to manylinux2010 and manylinux1, but takes manylinux_2_N tags literally.
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(newest, 16, -1)] + [f"manylinux2014_{machine}"]
    return [option for tag in tags for option in ("--platform", tag)]


def _install_python(config: Config, target: Path, scratch: Path, log: Log) -> None:
    requirements = config.source / "requirements.txt"
    version = config.runtime.removeprefix("python")
    log(f"dependencies: installing {requirements.name} for {config.runtime} on {_platform(config)}")
    wheels = scratch / "wheels"  # pure-Python wheels built here from source distributions
    wheels.mkdir()
    pip_log = scratch / "pip.log"
    built: set[str] = set()
    for _ in range(MAX_SOURCE_BUILDS + 1):
        pip_log.unlink(missing_ok=True)
        command = [
            sys.executable, "-m", "pip", "install", "--requirement", str(requirements), "--target", str(target),
            "--implementation", "cp", "--python-version", version, *_platform_options(config),
            "--only-binary=:all:", "--find-links", str(wheels), "--no-compile", "--no-input",
            "--disable-pip-version-check", "--log", str(pip_log),
        ]  # fmt: skip
        result = _run(command, cwd=config.source)
        if result.returncode == 0:
            _check_built_for_lambda(target, requirements, config)
            return
        requirement = _missing_requirement(result.stderr)
        if requirement is None:
            raise DeployerError(f"pip could not install {requirements}: {_first_error(result.stderr, 'ERROR:')}")
        name = _project(requirement)
        _check_found(pip_log, requirement, name)
        if name in built or _publishes_platform_wheels(pip_log, name):
            raise _no_wheel(requirement, config, "")
        log(f"dependencies: {requirement} has no wheel; building it from source to check it is pure Python")
        if not _build_pure_wheel(requirement, name, wheels, config.source):
            raise _no_wheel(requirement, config, " (its source distribution is not pure Python)")
        built.add(name)
    raise DeployerError(f"{requirements}: more than {MAX_SOURCE_BUILDS} dependencies need building from source")


def _check_built_for_lambda(target: Path, requirements: Path, config: Config) -> None:
    """A local path, `-e` or `file:` requirement is built by pip on this machine whatever --only-binary says: the
    same rule as for the index holds, a wheel for Lambda's platform or pure Python, else the build fails."""
    machine = "aarch64" if config.architecture == "arm64" else "x86_64"
    for wheel in sorted(target.glob("*.dist-info/WHEEL")):
        tags = re.findall(r"^Tag:\s*(\S+)", wheel.read_text(encoding="utf-8", errors="replace"), re.MULTILINE)
        platforms = {tag.rsplit("-", 1)[-1] for tag in tags}
        if all(
            platform == "any" or (platform.startswith("manylinux") and platform.endswith(machine))
            for platform in platforms
        ):
            continue
        project = wheel.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        raise DeployerError(
            f"{project} (in {requirements}) was built on this machine for {', '.join(sorted(platforms))}, not for "
            f"{config.runtime} on {_platform(config)}: only manylinux wheels or pure Python are accepted; "
            "make it pure Python or publish a manylinux wheel of it"
        )


def _no_wheel(requirement: str, config: Config, why: str) -> DeployerError:
    return DeployerError(
        f"no wheel of {requirement!r} for {config.runtime} on {_platform(config)}{why}; "
        "pick a version that publishes manylinux wheels"
    )


def _missing_requirement(stderr: str) -> str | None:
    match = re.search(r"No matching distribution found for (.+)", stderr)
    return match.group(1).strip() if match else None


def _first_error(stderr: str, *prefixes: str) -> str:
    """The first line that says what went wrong, without the tool's prefix and npm's `code X` line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        for prefix in prefixes:
            text = line.removeprefix(prefix).strip()
            if line.startswith(prefix) and text and not text.startswith("code "):
                return text
    return lines[-1] if lines else "no error output"


def _project(requirement: str) -> str:
    """The normalised project name of a requirement (`Foo.Bar[x]>=1`) or a wheel (`Foo.Bar-1.0-py3-none-any.whl`)."""
    if requirement.endswith(".whl"):
        requirement = requirement.split("-")[0]
    match = re.match(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", requirement)
    return re.sub(r"[-_.]+", "-", match.group(0) if match else requirement).lower()


DISTRIBUTION_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".egg")
# pip's debug log (--log): each file it considered, each index page it could not read, each location it dropped.
CONSIDERED = ("Found link", "Skipping link")
URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+")
FETCH_FAILED = re.compile(r"Could not fetch URL (\S+): (.*)")
NOT_THERE = re.compile(r"Location '([^']+)' is ignored: it is neither a file nor a directory")
NO_LOCATION = re.compile(r"0 location\(s\) to search for versions of (\S+):")


def _log_lines(pip_log: Path) -> list[str]:
    """pip's messages, without the timestamp that starts each line."""
    text = pip_log.read_text(encoding="utf-8", errors="replace") if pip_log.is_file() else ""
    return [line.split(" ", 1)[1].strip() if " " in line else line for line in text.splitlines()]


def _last_part(url: str) -> str:
    path = url.split("#", 1)[0].split("?", 1)[0].rstrip("),").rstrip("/")
    return path.removesuffix("/index.html").rsplit("/", 1)[-1]


def _file_project(url: str) -> str | None:
    """The project a distribution file's URL is for; None for a URL that is not a distribution file."""
    filename = _last_part(url)
    if not filename.lower().endswith(DISTRIBUTION_SUFFIXES):
        return None
    # name-version…: the name ends at the first "-" followed by a digit (in a wheel's name there is no "-").
    match = re.match(r"(.+?)-\d", filename)
    return _project(match.group(1) if match else filename)


def _check_found(pip_log: Path, requirement: str, name: str) -> None:
    """When pip found no distribution of `name`, say whether the index has no such project at all, or could not
    be reached: pip's log tells both apart from "no wheel for Lambda", and both end the build.

    The project exists when pip saw any file of it (whatever its version or platform): then this returns and
    the wheel checks go on. It does not exist when pip saw none AND the index said so (a 404, a local index
    without its folder, no place to look at all). When one of its pages could not be read for another reason
    (no network, a server error), the index could not be reached. With no evidence either way, this returns."""
    lines = _log_lines(pip_log)
    for line in lines:
        if line.startswith(CONSIDERED) and any(_file_project(url) == name for url in URL.findall(line)):
            return
    failed = [match for line in lines if (match := FETCH_FAILED.match(line)) and _project(_last_part(match[1])) == name]
    unreachable = [match for match in failed if not match[2].startswith("404 ")]
    if unreachable:
        url, reason = unreachable[0][1], unreachable[0][2].split(":", 1)[0].strip()
        raise DeployerError(
            f"pip could not reach the package index for {requirement!r} ({url}: {reason}); "
            "check the network, or the index settings (pip.conf, PIP_INDEX_URL)"
        )
    not_there = [
        line
        for line in lines
        if ((match := NOT_THERE.match(line)) and _project(_last_part(match[1])) == name)
        or ((match := NO_LOCATION.match(line)) and _project(match[1]) == name)
    ]
    if failed or not_there:
        spelled = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        raise DeployerError(
            f"{(spelled.group(0) if spelled else requirement)!r} does not exist on the package index; "
            "check its name in requirements.txt"
        )


def _publishes_platform_wheels(pip_log: Path, name: str) -> bool:
    """Whether pip skipped wheels of `name` built for other platforms: then it is a compiled package."""
    skipped = re.compile(r"Skipping link: none of the wheel's tags \(([^)]*)\).*?([^/\s]+\.whl)")
    text = pip_log.read_text(encoding="utf-8", errors="replace") if pip_log.is_file() else ""
    for tags, filename in skipped.findall(text):
        if _project(filename) == name and any(not tag.strip().endswith("-none-any") for tag in tags.split(",")):
            return True
    return False


def _build_pure_wheel(requirement: str, name: str, wheels: Path, cwd: Path) -> bool:
    """Build `requirement` from its source distribution; keep the wheel only when it is pure Python 3."""
    with tempfile.TemporaryDirectory(dir=wheels.parent) as built:
        command = [
            sys.executable, "-m", "pip", "wheel", requirement, "--no-deps", "--no-binary", name,
            "--ignore-requires-python", "--wheel-dir", built, "--no-input", "--disable-pip-version-check",
        ]  # fmt: skip
        if _run(command, cwd=cwd).returncode != 0:
            return False
        found = [wheel for wheel in Path(built).glob("*.whl") if _project(wheel.name) == name]
        for wheel in found:
            python, abi, platform = wheel.stem.split("-")[-3:]
            if abi != "none" or platform != "any" or not any(tag.startswith("py3") for tag in python.split(".")):
                return False
        for wheel in found:
            shutil.move(wheel, wheels / wheel.name)
        return bool(found)


# ---- node ------------------------------------------------------------------------------------------------------


def _install_node(config: Config, target: Path, scratch: Path, log: Log) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise DeployerError(f"{config.source / 'package.json'} needs npm, which is not installed; install Node.js")
    work = scratch / "npm"
    work.mkdir()
    for name in NODE_MANIFESTS:  # only the manifests: the user's folder is never written to
        if (config.source / name).is_file():
            shutil.copyfile(config.source / name, work / name)
    locked = (work / "package-lock.json").is_file() or (work / "npm-shrinkwrap.json").is_file()
    verb = "ci" if locked else "install"
    cpu = "arm64" if config.architecture == "arm64" else "x64"
    log(f"dependencies: npm {verb} --omit=dev for {config.runtime} on linux {cpu}")
    command = [npm, verb, "--omit=dev", f"--cpu={cpu}", "--os=linux", "--libc=glibc", "--no-audit", "--no-fund"]
    if not config.install_scripts:  # [dependencies] scripts = true runs them
        command.append("--ignore-scripts")
    result = _run(command, cwd=work)
    if result.returncode != 0:
        error = _first_error(result.stderr, "npm error", "npm ERR!")
        raise DeployerError(f"npm {verb} failed for {config.source / 'package.json'}: {error}")
    if (work / "node_modules").is_dir():
        (work / "node_modules").rename(target / "node_modules")
