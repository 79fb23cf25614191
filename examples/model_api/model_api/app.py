"""The Flask app: /healthz and /predict, JSON in and out, errors as JSON too."""

from __future__ import annotations

import math
from pathlib import Path

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from model_api.model import Model

MAX_BODY = 64 * 1024


class BadInput(ValueError):
    pass


def _release_id() -> str | None:
    """The release this code was deployed as: provision puts it at <app_root>/releases/<id>/app."""
    app_dir = Path(__file__).resolve().parent.parent
    if app_dir.name == "app" and app_dir.parent.parent.name == "releases":
        return app_dir.parent.name
    return None


def parse_features(payload: object, names: list[str]) -> list[float]:
    if not isinstance(payload, dict) or "features" not in payload:
        raise BadInput('expected a JSON object with "features"')
    features = payload["features"]
    if isinstance(features, dict):
        missing = [n for n in names if n not in features]
        unknown = sorted(set(features) - set(names))
        if missing or unknown:
            raise BadInput(f"features must have exactly the keys {names}; missing {missing}, unknown {unknown}")
        values = [features[n] for n in names]
    elif isinstance(features, list):
        if len(features) != len(names):
            raise BadInput(f"features must be a list of {len(names)} numbers: {names}")
        values = features
    else:
        raise BadInput(f"features must be a list of {len(names)} numbers or an object with keys {names}")
    out = []
    for name, value in zip(names, values):
        # bool is an int in Python, but true/false is not a measurement.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadInput(f"{name} must be a finite number, got {value!r}")
        out.append(float(value))
    return out


def create_app(model: Model | None = None) -> Flask:
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False
    model = model or Model.load()
    release = _release_id()

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", model=model.name, model_version=model.version, release=release)

    @app.post("/predict")
    def predict():
        payload = request.get_json(silent=True)
        if payload is None:
            return jsonify(error="expected a JSON body (Content-Type: application/json)"), 400
        try:
            x = parse_features(payload, model.features)
        except BadInput as e:
            return jsonify(error=str(e)), 400
        probabilities = model.predict(x)
        best = max(probabilities, key=probabilities.get)
        return jsonify(
            {
                "class": best,
                "probabilities": {c: round(p, 6) for c, p in probabilities.items()},
                "model_version": model.version,
            }
        )

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        return jsonify(error=e.description, status=e.code), e.code

    return app
