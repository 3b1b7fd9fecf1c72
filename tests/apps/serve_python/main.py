"""Test function for `deployer serve` (tests/test_serve*.py): one handler, routed by the first path segment.

The Node.js twin is tests/apps/serve_node/index.js; both answer the same routes the same way.
"""

import importlib.util
import json
import os
import time

VERSION = "v1"
invocations = 0  # module state: kept between requests by a warm worker


def reply(data, status=200):
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(data)}


def handler(event, context):
    global invocations
    invocations += 1
    route = event["path"].strip("/").split("/")
    name = route[0]
    if name == "reply":  # answer exactly what the request body says
        return json.loads(event["body"])
    if name == "count":
        return reply({"count": invocations})
    if name == "version":
        return reply({"version": VERSION})
    if name == "pid":
        return reply({"pid": os.getpid()})
    if name == "sleep":
        time.sleep(float(route[1]))
        return reply({"slept": float(route[1])})
    if name == "crash":
        os._exit(1)
    if name == "raise":
        raise ValueError("boom from the function")
    if name == "print":
        print("hello from the function")
        return reply({"printed": True})
    if name == "context":
        return reply(
            {
                "functionName": context.function_name,
                "functionVersion": context.function_version,
                "memoryLimitInMB": context.memory_limit_in_mb,
                "awsRequestId": context.aws_request_id,
                "invokedFunctionArn": context.invoked_function_arn,
                "logGroupName": context.log_group_name,
                "remainingTimeInMillis": context.get_remaining_time_in_millis(),
            }
        )
    if name == "env":
        return reply({"env": dict(os.environ), "cwd": os.getcwd()})
    if name == "imports":
        modules = ("boto3", "typer", "helperlib")
        return reply({module: importlib.util.find_spec(module) is not None for module in modules})
    return reply({"event": event})
