"""The naive baseline for benchmarks/api_latency.py: the same bundle behind a handler that calls `model.predict` once
per MC sample (30 calls a request), as a first version of the API would. Not part of the package."""
import os, threading
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel
from itff.artifacts import load_bundle

bundle = load_bundle(os.environ["ITFF_NAIVE_BUNDLE"])
model, scaler, calibrator = bundle.models[0], bundle.scaler, bundle.calibrator
app = FastAPI()
lock = threading.Lock()   # Keras's predict is not thread-safe (it donates the model's buffers); sync handlers: threads


class Req(BaseModel):
    symbol: str; target: str = "direction"; model_type: str = "lstm"; mc_samples: int = 30; sequence: list[list[float]]


@app.post("/predict")
def predict(req: Req):
    x = scaler.transform(np.asarray(req.sequence))[None]
    with lock: p = np.array([model.predict(x, verbose=0)[0, 0] for _ in range(req.mc_samples)])
    return {"probability": float(calibrator(np.array([p.mean()]))[0]), "mc_mean": float(p.mean()),
            "mc_std": float(p.std())}
