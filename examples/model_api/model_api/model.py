"""Inference for the softmax regression in model.json (trained by training/train.py)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

MODEL_FILE = Path(__file__).resolve().parent / "model.json"


@dataclass(frozen=True)
class Model:
    name: str
    version: str
    features: list[str]
    classes: list[str]
    mean: list[float]
    std: list[float]
    weights: list[list[float]]
    bias: list[float]

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> "Model":
        raw = path.read_bytes()
        data = json.loads(raw)
        return cls(
            name=data["name"],
            version=hashlib.sha256(raw).hexdigest()[:12],
            features=list(data["features"]),
            classes=list(data["classes"]),
            mean=[float(v) for v in data["mean"]],
            std=[float(v) for v in data["std"]],
            weights=[[float(v) for v in row] for row in data["weights"]],
            bias=[float(v) for v in data["bias"]],
        )

    def predict(self, x: list[float]) -> dict[str, float]:
        """Class probabilities for one sample (len(x) == len(self.features))."""
        z = [(v - m) / s for v, m, s in zip(x, self.mean, self.std)]
        logits = [sum(w * v for w, v in zip(row, z)) + b for row, b in zip(self.weights, self.bias)]
        top = max(logits)
        exps = [math.exp(v - top) for v in logits]
        total = sum(exps)
        return {c: e / total for c, e in zip(self.classes, exps)}
