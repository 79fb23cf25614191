"""The app at /admin of the several-apps lab test: its links, built by url_for, carry the path
prefix nginx passes as SCRIPT_NAME, while its own routes stay unprefixed."""

import os

from flask import Flask, jsonify, request, url_for

app = Flask(__name__)
VERSION = "1"


@app.get("/healthz")
def healthz():
    return jsonify(app="admin", version=VERSION, pid=os.getpid())


@app.get("/link")
def link():
    return jsonify(app="admin", link=url_for("healthz"), script_root=request.script_root, path=request.path)
