"""What a user would otherwise write: FastAPI around `transformers.pipeline`, one text scored per call.

    python benchmarks/pipeline_server.py --model export/ --port 8081   # a directory from `emotion-export`

benchmarks/serve.py starts it beside `emotion-serve` on the same model. It speaks TEI's /predict shape for one
string (the load test sends one sentence a request) and answers /health.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline


class Request(BaseModel):
    inputs: str


def app_for(model: str) -> FastAPI:
    clf = pipeline("text-classification", model=model, top_k=None, function_to_apply="sigmoid")
    app = FastAPI()

    @app.post("/predict")
    def predict(request: Request):  # sync: FastAPI runs it in its thread pool
        return clf(request.inputs, truncation=True)

    @app.get("/health")
    def health():
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--port", type=int, default=8081)
    args = ap.parse_args()
    uvicorn.run(app_for(args.model), host="127.0.0.1", port=args.port, log_level="warning")
