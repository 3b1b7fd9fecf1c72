"""API Gateway's REST proxy contract (payload 1.0), once, for every emulation of it; http_api.py is payload 2.0
(HTTP APIs and function URLs).

`deployer serve` (deployer/serve/) and the local cloud's data plane (deployer/local/) both play API
Gateway in front of a function; what API Gateway does is written here and nowhere else:

- proxy.py: the request in (payload limit, X-Forwarded-* headers), the event the function gets, the
  function's answer checked and turned into HTTP;
- answers.py: the answers API Gateway gives by itself (403, 413, 500, 502, 504 ...), byte for byte;
- integration.py: the Lambda integration's names (integration URI, service principal, execute-api
  ARN) and `answer_from_function`, which turns a failed or malformed invocation into the 502.

Standard library only: no boto3, no moto.
"""

from deployer.gateway.answers import CannedAnswer, Response
from deployer.gateway.integration import APIGATEWAY_PRINCIPAL, FunctionError, answer_from_function
from deployer.gateway.proxy import MAX_REQUEST_BODY, MalformedResponseError, build_event, to_http_response

__all__ = [
    "APIGATEWAY_PRINCIPAL",
    "MAX_REQUEST_BODY",
    "CannedAnswer",
    "FunctionError",
    "MalformedResponseError",
    "Response",
    "answer_from_function",
    "build_event",
    "to_http_response",
]
