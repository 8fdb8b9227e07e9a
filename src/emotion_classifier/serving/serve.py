"""`emotion-serve`: a trained model directory behind an HTTP endpoint (app.py), on localhost by default.

    emotion-serve --model-dir models --port 8080
    curl -s localhost:8080/predict -H 'content-type: application/json' -d '{"inputs": ["I love it", "so sad"]}'
    open http://localhost:8080/ to try it in a browser
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..errors import UserError, one_line_errors
from .options import add_model_options, load_classifier, positive


def parser() -> argparse.ArgumentParser:
    from .app import Limits

    ap = argparse.ArgumentParser(prog="emotion-serve", description="Serve a trained model over HTTP (TEI's API).")
    add_model_options(ap, backend="auto")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                    "only; 0.0.0.0 for every interface)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--max-batch-size", type=positive, default=Limits.max_batch_size,
                    help=f"texts scored together by dynamic batching (default {Limits.max_batch_size})")
    ap.add_argument("--max-wait-ms", type=float, default=Limits.max_wait_ms,
                    help=f"how long a batch waits for more requests (default {Limits.max_wait_ms} ms)")
    ap.add_argument("--no-batching", action="store_true", help="score each request alone")
    ap.add_argument("--max-client-batch-size", type=positive, default=Limits.max_client_batch_size,
                    help=f"texts in one request; more get 413 (default {Limits.max_client_batch_size})")
    ap.add_argument("--max-body-bytes", type=positive, default=Limits.max_body_bytes,
                    help=f"request body size; larger gets 413 (default {Limits.max_body_bytes})")
    ap.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return ap


def describe(args: argparse.Namespace):
    """What /info tells of the model beyond the classifier itself: where it came from, where its thresholds did."""
    def about(clf) -> dict:
        try:
            record = json.loads((Path(args.model_dir) / "config.json").read_text()).get("train", {})
        except (OSError, ValueError):
            record = {}
        section = " (onnx_int8 section)" if clf.backend == "onnx" and clf.quantized else ""
        source = (f"thresholds.json {args.thresholds}{section}" if clf.tuned else "fixed 0.5")
        return {"model_id": str(args.model_dir), "model_run_id": record.get("run_id"),
                "architecture": clf.config.get("name"), "thresholds_source": source,
                "device": clf.describe()}
    return about


@one_line_errors
def main(argv=None) -> None:
    args = parser().parse_args(argv)
    if not (Path(args.model_dir) / "config.json").is_file():
        raise UserError(f"{args.model_dir}: no trained model (config.json); train one (`make repro`) or give "
                        "--model-dir")
    import uvicorn

    from .. import hardware
    from .app import Limits, create_app

    # our lines at --log-level; libraries' (onnxruntime's quantizer logs every tensor at INFO) at warnings only
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("emotion_classifier").setLevel(args.log_level.upper())
    limits = Limits(max_batch_size=1 if args.no_batching else args.max_batch_size,
                    max_wait_ms=0.0 if args.no_batching else args.max_wait_ms,
                    max_client_batch_size=args.max_client_batch_size, max_body_bytes=args.max_body_bytes)
    failed: list[Exception] = []
    server: uvicorn.Server | None = None

    def stop(e: Exception) -> None:
        failed.append(e)
        server.should_exit = True

    # a server's thread count is chosen once, not by what happens to be idle at start (hardware.free_threads)
    app = create_app(lambda: load_classifier(args, threads=hardware.threads()), limits, on_load_error=stop,
                     describe=describe(args))
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                                           timeout_graceful_shutdown=30, access_log=args.log_level == "debug"))
    server.run()
    if failed:
        print(f"error: {failed[0]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
