"""A real framework app behind API Gateway's proxy integration: FastAPI, adapted by Mangum
(tests/test_gateway_fidelity.py serves it with `deployer serve`)."""

import base64

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from mangum import Mangum

PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
app = FastAPI()


@app.get("/", response_class=HTMLResponse)
def index() -> str:
    return "<h1>Hello from FastAPI</h1>"


@app.get("/pixel.png")
def pixel() -> Response:
    return Response(PIXEL, media_type="image/png")


@app.post("/echo")
async def echo(request: Request) -> dict:
    return {"echo": await request.json()}


@app.get("/search")
def search(q: str, page: int = 1) -> dict:
    return {"q": q, "page": page}


@app.get("/items/{item_id}")
def item(item_id: int, response: Response) -> dict:
    response.headers["X-Item-Source"] = "fastapi"
    return {"item_id": item_id}


handler = Mangum(app, lifespan="off")
