"""A Flask application served by AWS Lambda behind an API Gateway REST API (Lambda proxy integration).

apig-wsgi turns each API Gateway event into a WSGI request for Flask and Flask's response back into
the proxy response shape, so the application is written as any Flask application is.
"""

from apig_wsgi import make_lambda_handler
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(message="Hello from Flask on AWS Lambda")


@app.get("/hello/<name>")
def hello(name: str):
    return jsonify(message=f"Hello, {name}!", shout=request.args.get("shout") == "1")


@app.post("/echo")
def echo():
    return jsonify(received=request.get_json(silent=True))


handler = make_lambda_handler(app)
