"""A real framework app behind API Gateway's proxy integration: aws-lambda-powertools' APIGatewayRestResolver
(tests/test_gateway_fidelity.py serves it with `deployer serve`)."""

import base64

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
app = APIGatewayRestResolver()


@app.get("/")
def index() -> Response:
    return Response(200, content_types.TEXT_HTML, "<h1>Hello from Powertools</h1>")


@app.get("/pixel.png")
def pixel() -> Response:
    return Response(200, "image/png", PIXEL)


@app.post("/echo")
def echo() -> dict:
    return {"echo": app.current_event.json_body}


@app.get("/search")
def search() -> dict:
    return {
        "q": app.current_event.get_query_string_value("q"),
        "page": app.current_event.get_query_string_value("page"),
    }


@app.get("/items/<item_id>")
def item(item_id: str) -> Response:
    return Response(200, content_types.APPLICATION_JSON, {"item_id": item_id}, {"X-Item-Source": "powertools"})


def handler(event, context):
    return app.resolve(event, context)
