"""API Gateway's routing of a request to a REST API: which resource serves a path, with which parameters.

Pure API Gateway behaviour, on the wiring a deployment serves (resources, their methods, each method's
integration) as plain values: the local cloud snapshots moto's objects into these (local/dataplane.py).
A path is served by the exact resource first, then one with `{param}` segments, then a greedy `{name+}`;
`/` only by the root resource. Parameters keep their percent-encoding, as API Gateway does.
Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

GREEDY_SEGMENT = re.compile(r"\{([A-Za-z0-9_]+)\+\}")
PARAMETER_SEGMENT = re.compile(r"\{([A-Za-z0-9_]+)\}")
STAGE_VARIABLE = re.compile(r"\$\{stageVariables\.([A-Za-z0-9_.-]+)\}")


@dataclass(frozen=True)
class IntegrationSpec:
    type: str | None
    uri: str | None
    http_method: str | None
    credentials: str | None


@dataclass(frozen=True)
class MethodSpec:
    http_method: str
    authorization_type: str | None
    api_key_required: bool
    integration: IntegrationSpec | None


@dataclass(frozen=True)
class ResourceSpec:
    id: str
    path: str
    methods: Mapping[str, MethodSpec]


def with_stage_variables(text: str, stage_variables: Mapping[str, str]) -> str:
    """`text` (an integration URI) with each `${stageVariables.NAME}` replaced by the stage's value ("" if unset)."""
    return STAGE_VARIABLE.sub(lambda found: str(stage_variables.get(found.group(1), "")), text)


def _segments(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return [] if parts == [""] else parts


def _match(pattern: list[str], wanted: list[str]) -> tuple[tuple[int, ...], dict[str, str]] | None:
    """Per segment 2 (literal), 1 (`{param}`) or 0 (greedy `{name+}`, last only), and the parameters (as sent:
    API Gateway does not decode them; a trailing slash is not part of them)."""
    score: list[int] = []
    parameters: dict[str, str] = {}
    for index, part in enumerate(pattern):
        greedy = GREEDY_SEGMENT.fullmatch(part)
        if greedy:
            if index != len(pattern) - 1 or len(wanted) <= index:
                return None
            parameters[greedy.group(1)] = "/".join(wanted[index:])  # percent-encoding kept, as API Gateway does
            return (*score, 0), parameters
        if index >= len(wanted):
            return None
        single = PARAMETER_SEGMENT.fullmatch(part)
        if single:
            parameters[single.group(1)] = wanted[index]
            score.append(1)
        elif part == wanted[index]:
            score.append(2)
        else:
            return None
    return (tuple(score), parameters) if len(pattern) == len(wanted) else None


def match_resource(resources: Sequence[ResourceSpec], path: str) -> tuple[ResourceSpec, dict[str, str]] | None:
    """The resource serving `path` and its path parameters: the exact path first, then `{param}`
    segments, then a greedy `{name+}`; `/` is served by the root resource only."""
    wanted = _segments(path)
    best: tuple[tuple[int, ...], ResourceSpec, dict[str, str]] | None = None
    for resource in resources:
        pattern = _segments(resource.path)
        if not pattern or not wanted:
            if not pattern and not wanted:
                return resource, {}
            continue
        found = _match(pattern, wanted)
        if found is not None and (best is None or found[0] > best[0]):
            best = (found[0], resource, found[1])
    return (best[1], best[2]) if best else None
