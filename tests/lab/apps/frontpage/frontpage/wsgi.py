"""The app "site" at / of the several-apps lab test: every path the other apps' prefixes leave to it."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return jsonify(app="site")


@app.get("/<path:anything>")
def anything(anything: str):
    return jsonify(app="site", path=request.path)
