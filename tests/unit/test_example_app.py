"""The example app (examples/model_api): Flask test client, no server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from provisioner import PROJECT_ROOT

APP_DIR = PROJECT_ROOT / "examples" / "model_api"
pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def client():
    sys.path.insert(0, str(APP_DIR))
    try:
        from model_api.wsgi import app

        yield app.test_client()
    finally:
        sys.path.remove(str(APP_DIR))


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "ok"
    assert body["model"] == "iris-softmax"
    assert len(body["model_version"]) == 12
    assert body["release"] is None  # not deployed: no releases/<id>/app around it


@pytest.mark.parametrize(
    "features, expected",
    [
        ([5.1, 3.5, 1.4, 0.2], "setosa"),
        ([6.4, 3.2, 4.5, 1.5], "versicolor"),
        ([6.3, 3.3, 6.0, 2.5], "virginica"),
        ({"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 5.1, "petal_width": 1.8}, "virginica"),
        ([5, 3, 1, 0], "setosa"),  # ints are numbers too
    ],
)
def test_predict(client, features, expected):
    r = client.post("/predict", json={"features": features})
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["class"] == expected
    probs = body["probabilities"]
    assert set(probs) == {"setosa", "versicolor", "virginica"}
    assert abs(sum(probs.values()) - 1) < 1e-4
    assert max(probs, key=probs.get) == expected


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"data": "not json", "content_type": "application/json"}, "JSON body"),
        ({"data": "[1,2,3,4]", "content_type": "text/plain"}, "JSON body"),
        ({"json": [1, 2, 3, 4]}, '"features"'),
        ({"json": {"x": [1, 2, 3, 4]}}, '"features"'),
        ({"json": {"features": [1, 2, 3]}}, "list of 4 numbers"),
        ({"json": {"features": [1, 2, 3, "4"]}}, "petal_width must be a finite number"),
        ({"json": {"features": [1, 2, True, 4]}}, "petal_length must be a finite number"),
        ({"json": {"features": [1, 2, None, 4]}}, "petal_length must be a finite number"),
        ({"json": {"features": "1,2,3,4"}}, "list of 4 numbers"),
        ({"json": {"features": {"sepal_length": 1}}}, "missing"),
        ({"data": '{"features": [1, 2, NaN, 4]}', "content_type": "application/json"}, "finite"),
        ({"data": '{"features": [1e999, 2, 3, 4]}', "content_type": "application/json"}, "finite"),
    ],
)
def test_predict_rejects_bad_input(client, kwargs, fragment):
    r = client.post("/predict", **kwargs)
    assert r.status_code == 400
    assert r.is_json
    assert fragment in r.get_json()["error"]


def test_errors_are_json(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.get_json()["status"] == 404
    r = client.get("/predict")
    assert r.status_code == 405 and r.is_json
    r = client.post("/predict", data=b"x" * (65 * 1024), content_type="application/json")
    assert r.status_code == 413 and r.is_json


def test_model_file_is_what_the_training_script_writes(tmp_path):
    """The committed coefficients come from training/train.py (deterministic, pure Python)."""
    script = APP_DIR / "training" / "train.py"
    code = (
        "import runpy, sys, pathlib; g = runpy.run_path(sys.argv[1]);"
        "import json; print(json.dumps(g['train']()))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(script)], capture_output=True, text=True,
                         check=True, timeout=60)
    trained = json.loads(out.stdout)
    committed = json.loads((APP_DIR / "model_api" / "model.json").read_text())
    assert trained == committed
    assert committed["training"]["train_accuracy"] >= 0.95


def test_app_ships_static_files_and_pinned_requirements():
    assert (APP_DIR / "static" / "robots.txt").is_file()
    assert (APP_DIR / "static" / "index.html").is_file()
    reqs = [
        line.strip() for line in (APP_DIR / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert any(r.lower().startswith("flask==") for r in reqs)
    assert all("==" in r for r in reqs)
