"""The child process that runs a Python Lambda handler for `deployer serve` (protocol: see runner.py).

Started as `python -I -S -B -u python_worker.py IN_FD OUT_FD` in the function's folder with Lambda's
environment variables. It imports the handler once (the cold start), says "ready", then answers one
JSON request line from IN_FD at a time with one JSON line on OUT_FD. The function's own stdout and
stderr are the server's console. Standard library only: this runs without the tool's site-packages.
"""

from __future__ import annotations

import decimal
import importlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

Handler = Callable[[Any, "LambdaContext"], Any]
current_request_id = ""


class LambdaContext:
    """The `context` argument, with the attributes and method of Lambda's Python runtime."""

    def __init__(self, request_id: str, deadline_ms: int, invoked_function_arn: str) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


class HandlerNotLoaded(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = current_request_id
        return True


def install_logging() -> None:
    """Like Lambda: the root logger prints `[LEVEL] time request-id message`; its level stays WARNING."""
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    logging.getLogger().addHandler(handler)


def set_import_path() -> str:
    """The function's folder first, then the other code folders (PYTHONPATH), then the standard library."""
    root = os.environ["LAMBDA_TASK_ROOT"]
    folders = [folder for folder in os.environ.get("PYTHONPATH", "").split(os.pathsep) if folder]
    sys.path[:0] = list(dict.fromkeys([root, *folders]))
    return root


def load_handler(spec: str) -> Handler:
    module_name, _, function_name = spec.rpartition(".")
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as error:
        raise HandlerNotLoaded(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {error}"
        ) from error
    except ImportError as error:
        raise HandlerNotLoaded(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}"
        ) from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise HandlerNotLoaded(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'"
        )
    return function


def error_payload(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    cause = error.__cause__ or error
    frames = [frame for frame in traceback.extract_tb(cause.__traceback__) if frame.filename != __file__]
    return {
        "errorType": error_type or type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": traceback.format_list(frames),
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def send(answers: BinaryIO, message: dict[str, Any] | str) -> None:
    line = message if isinstance(message, str) else json.dumps(message)
    answers.write(line.encode("utf-8") + b"\n")
    answers.flush()


def invoke(handler: Handler, request: dict[str, Any]) -> dict[str, Any] | str:
    """The answer to one request: the result as a JSON line, or an error message."""
    global current_request_id
    current_request_id = str(request["requestId"])
    context = LambdaContext(current_request_id, int(request["deadlineMs"]), str(request["invokedFunctionArn"]))
    try:
        result = handler(request["event"], context)
    except Exception as error:
        return {"type": "error", "error": error_payload(error)}
    try:
        return json.dumps({"type": "result", "result": result}, default=_json_default)
    except (TypeError, ValueError) as error:
        payload = error_payload(error, "Runtime.MarshalError")
        payload["errorMessage"] = f"Unable to marshal response: {error}"
        return {"type": "error", "error": payload}


def main() -> int:
    requests = os.fdopen(int(sys.argv[1]), "rb")
    answers = os.fdopen(int(sys.argv[2]), "wb")
    os.chdir(set_import_path())
    install_logging()
    try:
        handler = load_handler(os.environ["_HANDLER"])
    except HandlerNotLoaded as error:
        send(answers, {"type": "error", "error": error_payload(error, error.error_type)})
        return 1
    except Exception as error:
        send(answers, {"type": "error", "error": error_payload(error)})
        return 1
    send(answers, {"type": "ready"})
    for line in requests:
        send(answers, invoke(handler, json.loads(line)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
