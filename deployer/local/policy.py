"""A Lambda function's resource policy, evaluated as Lambda evaluates it for API Gateway's invocation.

Only what a deployment's grants use: the `lambda:InvokeFunction` action, the `apigateway.amazonaws.com`
principal (or `*`), and ArnLike / StringLike / ArnEquals / StringEquals conditions on `AWS:SourceArn` and
`AWS:SourceAccount`; an explicit Deny wins. Any other condition operator is refused, with the reason.
A function URL's anonymous caller (AuthType NONE) is asked for with `action` `lambda:InvokeFunctionUrl`,
`principal` `*` and the context key `lambda:FunctionUrlAuthType` (StringEquals, or Bool for
`lambda:InvokedViaFunctionUrl`), as AWS documents the statement for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from deployer.gateway.integration import APIGATEWAY_PRINCIPAL, INVOKE_ACTION


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def arn_like(pattern: str, value: str) -> bool:
    """IAM's ArnLike / StringLike: `*` any run of characters (slashes too), `?` one character."""
    expression = "".join(
        ".*" if character == "*" else "." if character == "?" else re.escape(character) for character in pattern
    )
    return re.fullmatch(expression, value, flags=re.DOTALL) is not None


def _action_matches(statement: Mapping[str, Any], wanted: str = INVOKE_ACTION) -> bool:
    return any(arn_like(str(action).lower(), wanted.lower()) for action in _as_list(statement.get("Action")))


def _principal_matches(statement: Mapping[str, Any], caller: str = APIGATEWAY_PRINCIPAL) -> bool:
    """Whether the statement names `caller` (a service principal), or everyone (`*`, which is all an anonymous
    caller, `caller` "*", can be)."""
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return False
    return (caller != "*" and caller in _as_list(principal.get("Service"))) or "*" in _as_list(principal.get("AWS"))


CONDITION_TESTS: dict[str, Callable[[str, str], bool]] = {
    "arnlike": arn_like,
    "stringlike": arn_like,
    "arnequals": lambda pattern, value: pattern == value,
    "stringequals": lambda pattern, value: pattern == value,
    "bool": lambda pattern, value: pattern.lower() == value.lower(),
}


def _conditions_hold(statement: Mapping[str, Any], context: Mapping[str, str]) -> tuple[bool, str]:
    """Whether every condition holds for this request's context keys (lower-cased)."""
    for operator, tests in (statement.get("Condition") or {}).items():
        test = CONDITION_TESTS.get(str(operator).lower())
        if test is None or not isinstance(tests, Mapping):
            return False, f"condition operator {operator} is not emulated"
        for key, patterns in tests.items():
            value = context.get(str(key).lower())
            if value is None or not any(test(str(pattern), value) for pattern in _as_list(patterns)):
                return False, f"{key} {value} does not match {operator} {patterns}"
    return True, ""


def policy_allows(
    statements: Sequence[Mapping[str, Any]],
    source_arn: str | None,
    account: str,
    resource: str | None = None,
    *,
    action: str = INVOKE_ACTION,
    principal: str = APIGATEWAY_PRINCIPAL,
    context: Mapping[str, str] | None = None,
) -> tuple[bool, str]:
    """Whether the policy lets API Gateway invoke the function for a request from `source_arn`, and why not.

    With `resource` (the invoked ARN; unqualified for $LATEST), only that ARN's statements count: Lambda keeps
    one policy per alias or version besides the function's own, where moto keeps every statement in one
    list, each naming its Resource. A grant on the function does not let anyone invoke its alias."""
    if resource is not None:
        statements = [
            statement
            for statement in statements
            if any(arn_like(str(item), resource) for item in _as_list(statement.get("Resource")))
        ]
    keys = {"aws:sourceaccount": account, **{key.lower(): value for key, value in (context or {}).items()}}
    if source_arn is not None:
        keys["aws:sourcearn"] = source_arn
    allowed, reasons = False, []
    for statement in statements:
        if not (_action_matches(statement, action) and _principal_matches(statement, principal)):
            continue
        holds, reason = _conditions_hold(statement, keys)
        if not holds:
            reasons.append(f"statement {statement.get('Sid', '?')}: {reason}")
            continue
        if str(statement.get("Effect", "Allow")).lower() == "deny":
            return False, f"statement {statement.get('Sid', '?')} denies it"
        allowed = True
    if allowed:
        return True, ""
    if not statements:
        return False, f"{resource or 'the function'} has no resource policy"
    return False, "; ".join(reasons) or f"no statement lets {principal} {action}"
