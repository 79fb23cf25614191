"""model_api: a small Flask model endpoint (Iris species from four flower measurements).

    GET  /healthz   -> 200 {"status": "ok", "model": ..., "model_version": ..., "release": ...}
    POST /predict   {"features": [5.1, 3.5, 1.4, 0.2]}
                    or {"features": {"sepal_length": 5.1, "sepal_width": 3.5, ...}}
                 -> 200 {"class": "setosa", "probabilities": {...}, "model_version": ...}
                    400 {"error": "..."} for bad input

The model (model_api/model.json) was trained offline by training/train.py; inference is pure Python.
"""

from model_api.app import create_app

__all__ = ["create_app"]
