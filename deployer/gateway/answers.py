"""The answers API Gateway gives by itself, without the function's say: status, headers and body, byte for byte.

Clients (and tests) compare these bodies byte for byte, so they are spelled exactly as API Gateway
spells them, spacing included: `{"message":"Missing Authentication Token"}` has no space after the
colon, `{"message": "Internal server error"}` has one.
"""

from __future__ import annotations

from dataclasses import dataclass

# What an emulated API Gateway sends back: status, headers in order (repeats allowed), body.
Response = tuple[int, list[tuple[str, str]], bytes]

JSON = "application/json"
INTERNAL_SERVER_ERROR_BODY = b'{"message": "Internal server error"}'


@dataclass(frozen=True)
class CannedAnswer:
    """One of API Gateway's own answers; `error_type` goes in the x-amzn-ErrorType header."""

    status: int
    body: bytes
    error_type: str | None = None
    content_type: str = JSON

    def response(self) -> Response:
        headers = [("Content-Type", self.content_type)]
        if self.error_type:
            headers.append(("x-amzn-ErrorType", self.error_type))
        return self.status, headers, self.body


# No API, stage, resource or method matches the request (API Gateway's answer to a URL it does not serve).
MISSING_AUTHENTICATION_TOKEN = CannedAnswer(
    403, b'{"message":"Missing Authentication Token"}', "MissingAuthenticationTokenException"
)
# A method behind an authorizer (not emulated) or one that needs an API key.
UNAUTHORIZED = CannedAnswer(401, b'{"message":"Unauthorized"}', "UnauthorizedException")
FORBIDDEN = CannedAnswer(403, b'{"message":"Forbidden"}', "ForbiddenException")
# The event is over Lambda's 6 MB payload limit (the body is under 10 MB, but once in the event, base64 or not,
# Lambda refuses it). Recorded: issue 22, API Gateway's answer to a 7 MB text body.
REQUEST_TOO_LONG = CannedAnswer(413, b'{"message": "Request Too Long"}')
# The request body is over MAX_REQUEST_BODY (10 MB): API Gateway's front door answers in plain text, with this
# very content type (recorded: issue 22).
CONTENT_LENGTH_EXCEEDED = CannedAnswer(
    413, b"HTTP content length exceeded 10485760 bytes.", content_type="text; charset=utf-8"
)
# The request line and header values are over MAX_REQUEST_HEADERS (10,240 bytes), API Gateway's fixed quota.
# Its text as clients report it ("HTTP header is larger than 10240 bytes."); the status is HTTP's own for it.
HEADERS_TOO_LARGE = CannedAnswer(431, b"HTTP header is larger than 10240 bytes.", content_type="text; charset=utf-8")
# The integration cannot be invoked: not a Lambda proxy, no such function, or its policy shuts the API out.
INTERNAL_SERVER_ERROR = CannedAnswer(500, INTERNAL_SERVER_ERROR_BODY, "InternalServerErrorException")
# The function failed, or answered something that is not a proxy response.
BAD_GATEWAY = CannedAnswer(502, INTERNAL_SERVER_ERROR_BODY, "InternalServerErrorException")
# The function was still running when the integration's timeout (29 s) ran out.
ENDPOINT_TIMED_OUT = CannedAnswer(504, b'{"message": "Endpoint request timed out"}')
# A request line `deployer serve` cannot even parse (real API Gateway never lets one through).
BAD_REQUEST = CannedAnswer(400, b'{"message": "Bad request"}')
