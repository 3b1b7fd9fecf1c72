"""A real framework app behind API Gateway's proxy integration: Flask, adapted by apig-wsgi
(tests/test_gateway_fidelity.py serves it with `deployer serve`)."""

import base64

from apig_wsgi import make_lambda_handler
from flask import Flask, jsonify, make_response, request

PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
app = Flask(__name__)


@app.get("/")
def index():
    return "<h1>Hello from Flask</h1>"


@app.get("/pixel.png")
def pixel():
    response = make_response(PIXEL)
    response.headers["Content-Type"] = "image/png"
    return response


@app.post("/upload")
def upload():
    return jsonify(size=len(request.get_data()), first=request.get_data()[:4].hex())


@app.get("/whoami")
def whoami():
    return jsonify(cookies=request.cookies, custom=request.headers.get("x-custom"), path=request.path)


@app.get("/cookies")
def cookies():
    response = make_response("two cookies")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


handler = make_lambda_handler(app, binary_support=True)
