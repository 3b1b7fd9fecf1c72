"""deploy.toml and versions: every mistake is one line that names what is wrong and what to do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deployer.config import check_version, load_config
from deployer.errors import UsageError


def write_config(folder: Path, text: str) -> Path:
    path = folder / "deploy.toml"
    path.write_text(text)
    return path


MINIMAL = '[app]\nname = "Demo"\n\n[artifact]\nbucket = "demo-artifacts"\n'


def test_the_repository_example_loads_with_the_documented_values() -> None:
    config = load_config(Path(__file__).resolve().parent.parent / "deploy.toml")
    assert (config.app_name, config.region, config.runtime, config.stage) == (
        "ServerlessExample",
        "us-east-1",
        "python3.13",
        "test",
    )
    assert config.artifact_key("1.0.0") == "v1.0.0/example.zip"


def test_defaults_fill_everything_but_the_app_name_and_bucket(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, MINIMAL))
    assert (config.handler, config.memory, config.timeout, config.architecture) == ("main.handler", 128, 3, "x86_64")
    assert config.source == tmp_path / "function"
    assert config.region is None  # taken from the AWS environment


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[app\nname = 1", r"is not valid TOML: .*line 1"),
        (MINIMAL + "[function]\nmemroy = 256\n", r"unknown key 'memroy' in \[function\]; known keys: source"),
        (MINIMAL + "[lambda]\n", r"unknown section \[lambda\]"),
        (MINIMAL + '[function]\nmemory = "256"\n', r"\[function\] memory must be an integer, not '256'"),
        (MINIMAL + "[function]\nmemory = true\n", r"\[function\] memory must be an integer"),
        (MINIMAL + "[function]\nmemory = 64\n", r"\[function\] memory must be between 128 and 10240"),
        ('[artifact]\nbucket = "b-b-b"\n', r"\[app\] name is required"),
        ('[app]\nname = "Demo"\n', r"\[artifact\] bucket is required"),
        (MINIMAL + '[function]\nruntime = "nodejs6.10"\n', r"'nodejs6\.10' is retired: Lambda no longer accepts it"),
        (MINIMAL + '[function]\nruntime = "cobol1"\n', r"unknown runtime 'cobol1'; use one of python3\.11"),
        ('[app]\nname = "Demo"\n[artifact]\nbucket = "Not_A_Bucket"\n', r"'Not_A_Bucket' is not a valid S3 bucket"),
        (MINIMAL + '[function]\nenvironment = { "1BAD" = "x" }\n', r"environment has an invalid variable name"),
    ],
)
def test_configuration_mistakes_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        load_config(write_config(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_a_missing_configuration_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no such configuration file.*--config"):
        load_config(tmp_path / "deploy.toml")


@pytest.mark.parametrize("version", ["1.0.0", "2", "1.0.0-rc.1+build.5", "v2_beta", "a" * 64])
def test_good_versions_pass(version: str) -> None:
    assert check_version(version) == version


@pytest.mark.parametrize(
    "version", ["", "a" * 65, "1/2", "../1", "1..2", "1 0", "1;rm -rf", "$(id)", "1`x`", ".hidden", "-1", "1\n"]
)
def test_bad_versions_are_refused(version: str) -> None:
    with pytest.raises(UsageError, match="invalid version"):
        check_version(version)


def with_bucket(name: str) -> str:
    return f'[app]\nname = "Demo"\n[artifact]\nbucket = "{name}"\n'


@pytest.mark.parametrize(
    ("bucket", "rule"),
    [
        ("a..b", "no two dots in a row"),
        ("192.168.5.4", "not an IP address"),
        ("xn--bucket", "not starting with xn--"),
        ("sthree-bucket", "not starting with xn--, sthree-"),
        ("my-bucket-s3alias", "not ending with -s3alias"),
        ("my-bucket--ol-s3", "not ending with"),
        ("ab", "3-63 lowercase letters"),
        ("a" * 64, "3-63 lowercase letters"),
        ("-bucket", "starting and ending with a letter or digit"),
    ],
)
def test_a_bucket_name_s3_would_refuse_is_refused_before_anything(tmp_path: Path, bucket: str, rule: str) -> None:
    with pytest.raises(UsageError, match=re.escape(rule)) as caught:
        load_config(write_config(tmp_path, with_bucket(bucket)))
    assert "[artifact] bucket" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("handler", "problem"),
    [
        ("a" * 125 + ".handler", "is 133 characters; Lambda takes at most 128"),
        ("/etc/passwd.handler", "inside the source folder (no absolute path, no '..')"),
        ("../outside.handler", "inside the source folder"),
        ("lib/../../x.handler", "inside the source folder"),
        ("main", "must look like module.function"),
    ],
)
def test_a_handler_lambda_would_refuse_or_outside_the_source_is_refused(
    tmp_path: Path, handler: str, problem: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(problem)):
        load_config(write_config(tmp_path, MINIMAL + f'[function]\nhandler = "{handler}"\n'))


@pytest.mark.parametrize("name", ["AWS_REGION", "_HANDLER", "AWS_ACCESS_KEY_ID", "LAMBDA_TASK_ROOT"])
def test_a_variable_lambda_reserves_is_refused_by_name(tmp_path: Path, name: str) -> None:
    text = MINIMAL + f'[function]\nenvironment = {{ {name} = "top-secret-value" }}\n'
    with pytest.raises(UsageError, match=f"sets {name}, which Lambda reserves") as caught:
        load_config(write_config(tmp_path, text))
    assert "top-secret-value" not in str(caught.value)


def test_an_environment_over_4_kb_is_refused_naming_the_largest_variables_never_their_values(
    tmp_path: Path,
) -> None:
    secret = "s3cr3t" * 400  # 2,400 bytes each
    text = (
        MINIMAL + f'[function]\nenvironment = {{ SMALL = "x" }}\n[stages.prod]\nenvironment = {{ BIG = "{secret}" }}\n'
    )
    text += f'[stages.huge]\nenvironment = {{ BIG = "{secret}", BIGGER = "{secret}" }}\n'
    path = write_config(tmp_path, text)
    assert load_config(path, "prod").environment == {"SMALL": "x", "BIG": secret}  # 2.4 KB: fine
    with pytest.raises(UsageError, match=r"stage huge: the environment is 4815 bytes, over Lambda's 4096") as caught:
        load_config(path, "huge")
    assert "BIG" in str(caught.value) and secret[:12] not in str(caught.value)


def test_exclude_is_a_list_of_globs_and_not_a_stage_setting(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, MINIMAL + '[function]\nexclude = ["*.md", "tests/"]\n'))
    assert config.exclude == ("*.md", "tests/")
    with pytest.raises(UsageError, match=r"exclude must be a list"):
        load_config(write_config(tmp_path, MINIMAL + '[function]\nexclude = "*.md"\n'))
    with pytest.raises(UsageError, match=r"unknown key 'exclude' in \[prod\]"):
        load_config(write_config(tmp_path, MINIMAL + '[stages.prod]\nexclude = ["*.md"]\n'), "prod")
