"""Local emulation of API Gateway (REST proxy, payload 1.0) in front of the function: `deployer serve`.

The building blocks are reusable on their own: `build_event` / `to_http_response` (pure HTTP <->
event translation, from deployer.gateway), `FunctionRunner` (a warm worker process per function),
`make_server` (a bound server for tests and embedding) and `serve` (what the CLI runs).
"""

from deployer.gateway.integration import FunctionError
from deployer.gateway.proxy import MalformedResponseError, build_event, to_http_response
from deployer.serve.runner import FunctionCrash, FunctionRunner, FunctionTimeout
from deployer.serve.server import LocalApiServer, make_server, serve

__all__ = [
    "FunctionCrash",
    "FunctionError",
    "FunctionRunner",
    "FunctionTimeout",
    "LocalApiServer",
    "MalformedResponseError",
    "build_event",
    "make_server",
    "serve",
    "to_http_response",
]
