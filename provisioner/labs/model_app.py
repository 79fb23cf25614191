"""A model endpoint shaped like a real one, for the lab tests and benchmarks: numpy (and scikit-learn,
optionally) from PyPI wheels, and a weights file mapped at start-up that .gitignore leaves out and
.provisionignore takes back (as a real repository would hold it).

    model_app(dest, weights_bytes=200 * 10**6, scikit_learn=True)

POST /predict {"features": [...]} answers {"score": ..., "version": N} after a matrix product (OpenBLAS
threads); GET /healthz answers {"status": "ok"}. Plain WSGI: no web framework to download.
"""

from __future__ import annotations

import os
from pathlib import Path

REQUIREMENTS = {
    # CPython 3.11 and 3.13 wheels for x86_64 and aarch64 (Debian 12 and 13)
    "numpy": "numpy==2.2.6",
    "scikit-learn": "scikit-learn==1.6.1\nscipy==1.15.3\njoblib==1.5.1\nthreadpoolctl==3.6.0",
}

WSGI = '''"""A model endpoint: weights read at start-up, a matrix product per request."""
import json
import os

import numpy as np
{sklearn_import}
VERSION = {version}
HERE = os.path.dirname(os.path.abspath(__file__))
# Mapped, not read: the pages come from the page cache as they are used, and every worker (and the
# standby during a restart) shares them instead of holding a private copy of its own.
WEIGHTS = np.memmap(os.path.join(HERE, "weights.bin"), dtype=np.uint8, mode="r")
MATRIX = WEIGHTS[: 256 * 256].astype(np.float64).reshape(256, 256) / 255.0
{sklearn_model}

def _answer(start_response, status, body):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def app(environ, start_response):
    if environ["PATH_INFO"] == "/healthz":
        return _answer(start_response, "200 OK", {{"status": "ok", "weights": int(WEIGHTS.size)}})
    if environ["PATH_INFO"] == "/predict" and environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        features = np.asarray(json.loads(environ["wsgi.input"].read(length))["features"], dtype=np.float64)
        product = MATRIX @ MATRIX  # OpenBLAS's thread pool
        score = float(product[0, : features.size] @ features)
        return _answer(start_response, "200 OK", {{"score": score, "version": VERSION{sklearn_answer}}})
    return _answer(start_response, "404 Not Found", {{"error": "not found"}})
'''

SKLEARN = {
    "sklearn_import": "from sklearn.linear_model import LogisticRegression\n",
    "sklearn_model": ("CLASSIFIER = LogisticRegression().fit(MATRIX[:, :4], (MATRIX[:, 0] > 0.5).astype(int))\n"),
    "sklearn_answer": ', "class": int(CLASSIFIER.predict(features[None, :4])[0])',
}


def model_app(dest: Path, weights_bytes: int, scikit_learn: bool = False, version: int = 1,
              weights_seed: bytes = b"") -> Path:
    """The app in `dest` (made or rewritten): model_app/wsgi.py (callable `app`), weights.bin of
    weights_bytes random bytes (kept as is when its size already matches and no seed is given),
    requirements.txt, .gitignore (weights) and .provisionignore (`!weights.bin`)."""
    code = dest / "model_app"
    code.mkdir(parents=True, exist_ok=True)
    (code / "__init__.py").write_text("")
    parts = SKLEARN if scikit_learn else dict.fromkeys(SKLEARN, "")
    (code / "wsgi.py").write_text(WSGI.format(version=version, **parts))
    weights = code / "weights.bin"
    if weights_seed or not weights.is_file() or weights.stat().st_size != weights_bytes:
        with weights.open("wb") as f:
            f.write(weights_seed)
            left = weights_bytes - len(weights_seed)
            while left > 0:
                f.write(os.urandom(min(left, 1 << 24)))
                left -= 1 << 24
    wanted = [REQUIREMENTS["numpy"]] + ([REQUIREMENTS["scikit-learn"]] if scikit_learn else [])
    (dest / "requirements.txt").write_text("\n".join(wanted) + "\n")
    (dest / ".gitignore").write_text("*.bin\n")
    (dest / ".provisionignore").write_text("!model_app/weights.bin\n")
    return dest
