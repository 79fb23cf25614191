"""Train the example model: softmax (multinomial logistic) regression on Fisher's Iris data.

Pure Python, deterministic (no randomness: full-batch gradient descent from zero weights), so
running it again writes the same model_api/model.json byte for byte:

    python examples/model_api/training/train.py

Data: training/iris.csv, the 150-row Iris data set (R.A. Fisher, 1936; UCI Machine Learning
Repository), as shipped in scikit-learn's sklearn/datasets/data/iris.csv, with species names.
Features are standardized with the training mean/std, which the model file carries so that
inference (model_api/model.py) applies the same transform.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "iris.csv"
OUT = HERE.parent / "model_api" / "model.json"

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
EPOCHS = 2000
LEARNING_RATE = 0.5
L2 = 1e-3


def load() -> tuple[list[list[float]], list[int], list[str]]:
    with DATA.open(newline="") as f:
        rows = list(csv.DictReader(f))
    classes = sorted({r["species"] for r in rows})
    x = [[float(r[name]) for name in FEATURES] for r in rows]
    y = [classes.index(r["species"]) for r in rows]
    return x, y, classes


def softmax(z: list[float]) -> list[float]:
    m = max(z)
    e = [math.exp(v - m) for v in z]
    s = sum(e)
    return [v / s for v in e]


def train() -> dict:
    x, y, classes = load()
    n, d, k = len(x), len(FEATURES), len(classes)
    mean = [sum(row[j] for row in x) / n for j in range(d)]
    std = [math.sqrt(sum((row[j] - mean[j]) ** 2 for row in x) / n) for j in range(d)]
    xs = [[(row[j] - mean[j]) / std[j] for j in range(d)] for row in x]

    w = [[0.0] * d for _ in range(k)]
    b = [0.0] * k
    for _ in range(EPOCHS):
        gw = [[0.0] * d for _ in range(k)]
        gb = [0.0] * k
        for row, label in zip(xs, y):
            p = softmax([sum(w[c][j] * row[j] for j in range(d)) + b[c] for c in range(k)])
            for c in range(k):
                err = p[c] - (1.0 if c == label else 0.0)
                gb[c] += err
                for j in range(d):
                    gw[c][j] += err * row[j]
        for c in range(k):
            b[c] -= LEARNING_RATE * gb[c] / n
            for j in range(d):
                w[c][j] -= LEARNING_RATE * (gw[c][j] / n + L2 * w[c][j])

    correct = 0
    loss = 0.0
    for row, label in zip(xs, y):
        p = softmax([sum(w[c][j] * row[j] for j in range(d)) + b[c] for c in range(k)])
        correct += max(range(k), key=lambda c: p[c]) == label
        loss -= math.log(max(p[label], 1e-12))

    return {
        "name": "iris-softmax",
        "kind": "multinomial logistic regression",
        "features": FEATURES,
        "classes": classes,
        "mean": [round(v, 10) for v in mean],
        "std": [round(v, 10) for v in std],
        "weights": [[round(v, 10) for v in row] for row in w],
        "bias": [round(v, 10) for v in b],
        "training": {
            "script": "training/train.py",
            "data": "training/iris.csv",
            "rows": n,
            "epochs": EPOCHS,
            "learning_rate": LEARNING_RATE,
            "l2": L2,
            "train_accuracy": round(correct / n, 4),
            "train_log_loss": round(loss / n, 4),
        },
    }


if __name__ == "__main__":
    model = train()
    OUT.write_text(json.dumps(model, indent=2) + "\n")
    print(f"wrote {OUT}: train accuracy {model['training']['train_accuracy']}")
