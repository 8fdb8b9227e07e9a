"""Serving under load, side by side in one run: (a) `emotion-serve` with dynamic batching, (b) the same with
batching off, (c) a plain FastAPI + `transformers.pipeline` server (pipeline_server.py) on the same model.

    python benchmarks/serve.py [--model-dir models] [--clients 1,8,32] [--seconds 10] [--soak 60]

Each server runs on a free localhost port; N concurrent clients (asyncio tasks of one httpx client) each send one
sentence a `POST /predict` (aiohttp) until --seconds pass (or --max-requests each). Prints requests/s, p50 and p99
latency and errors per server and client count, the ratios the README quotes, then a --soak run of (a) at the
largest client count with the server's memory (RSS) at its start and end. The clients share the machine's
cores with the server, as they would on one host. Without --model-dir: a fresh fine-tune model of params.yaml's
encoder (speed does not depend on the weights) scored at fixed 0.5 thresholds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from emotion_classifier import hardware
from emotion_classifier.data import read_split
from emotion_classifier.export import export
from emotion_classifier.params import load_params

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cpuload  # noqa: E402
from inference import DATA, fresh_model_dir  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """A server process on a free port, started and waited for; stopped with SIGTERM on exit."""

    def __init__(self, name: str, cmd: list[str]):
        self.name, self.port = name, free_port()
        self.proc = subprocess.Popen([*cmd, "--port", str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        import httpx

        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited: {self.proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.name} never became healthy")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def load(url: str, texts: list[str], clients: int, seconds: float, max_requests: int) -> dict:
    """`clients` concurrent clients, one sentence a request, until `seconds` pass or each sent `max_requests`.
    aiohttp, not httpx: httpx's pool fell from 830 to 230 requests/s between 8 and 32 connections against a server
    that does no work, so it measured itself."""
    import aiohttp

    latencies, errors = [], 0
    deadline = time.perf_counter() + seconds

    async def client(k: int, http: aiohttp.ClientSession):
        nonlocal errors
        for i in range(max_requests):
            if time.perf_counter() >= deadline:
                return
            t0 = time.perf_counter()
            try:
                async with http.post(f"{url}/predict", json={"inputs": texts[(k * 7919 + i) % len(texts)]}) as r:
                    ok = r.status == 200 and isinstance(await r.json(), list)
            except (TimeoutError, aiohttp.ClientError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(k, http) for k in range(clients)))
        wall = time.perf_counter() - t0
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {"requests_per_s": len(latencies) / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "errors": errors, "requests": len(latencies)}


def servers(model_dir: Path, hf_dir: Path, serve_args: list[str]) -> dict[str, list[str]]:
    serve = [sys.executable, "-m", "emotion_classifier.serving.serve", "--model-dir", str(model_dir),
             "--log-level", "warning", *serve_args]
    return {"(a) emotion-serve, batching": serve,
            "(b) emotion-serve, batching off": [*serve, "--no-batching"],
            "(c) FastAPI + transformers.pipeline": [sys.executable, str(ROOT / "benchmarks/pipeline_server.py"),
                                                    "--model", str(hf_dir)]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", help="a fine-tune model directory with pooling pooler (default: a fresh one)")
    ap.add_argument("--encoder", default=None, help="the fresh model's encoder (default: params.yaml's)")
    ap.add_argument("--data", default=str(DATA), help="a folder with test.tsv and emotions.txt")
    ap.add_argument("--clients", default="1,8,32", help="concurrent clients, comma-separated")
    ap.add_argument("--seconds", type=float, default=10, help="each load run's length")
    ap.add_argument("--max-requests", type=int, default=100_000, help="requests per client at most")
    ap.add_argument("--soak", type=float, default=60, help="the memory run's length in seconds (0: none)")
    ap.add_argument("--serve-args", default="", help="emotion-serve's model flags for (a) and (b) (default: "
                    "its defaults with a tuned model; --thresholds fixed --backend onnx --quantize for a fresh one)")
    ap.add_argument("--strict", action="store_true", help="refuse to run unless the CPU is idle")
    args = ap.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    data = Path(args.data)
    labels = (data / "emotions.txt").read_text(encoding="utf-8").split()
    texts = list(read_split(data / "test.tsv", len(labels))["text"])
    results: dict[str, dict[int, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp, cpuload.watch(args.strict) as cpu:
        if args.model_dir:
            model_dir, serve_args = Path(args.model_dir), args.serve_args.split()
        else:
            encoder = args.encoder or load_params(ROOT / "params.yaml").model.encoder
            model_dir = fresh_model_dir(Path(tmp) / "m", encoder, labels, "transformer_finetune", pooling="pooler")
            serve_args = args.serve_args.split() or ["--thresholds", "fixed", "--backend", "onnx", "--quantize"]
        hf_dir = export(model_dir, Path(tmp) / "hf")
        soak = {}
        for name, cmd in servers(model_dir, hf_dir, serve_args).items():
            with Server(name, cmd) as server:
                asyncio.run(load(server.url, texts, max(clients), min(2.0, args.seconds), 50))  # warm-up
                results[name] = {n: asyncio.run(load(server.url, texts, n, args.seconds, args.max_requests))
                                 for n in clients}
                print_rows(name, results[name])
                if args.soak > 0 and not soak:  # (a)'s memory over a long run at the largest client count
                    before = rss_mb(server.proc.pid)
                    run = asyncio.run(load(server.url, texts, max(clients), args.soak, args.max_requests))
                    soak = {"server": name, "seconds": args.soak, "rss_mb_start": before,
                            "rss_mb_end": rss_mb(server.proc.pid), "errors": run["errors"],
                            "requests": run["requests"]}
    ratios = summary(results, clients)
    if soak:
        print(f"soak, {soak['server']}, {max(clients)} clients, {args.soak:.0f} s: {soak['requests']} requests, "
              f"{soak['errors']} errors, server RSS {soak['rss_mb_start']:.0f} -> {soak['rss_mb_end']:.0f} MB")
    print(f"CPU kind {hardware.cpu_kind()} ({hardware.cpu_name()}), {os.cpu_count()} cores, server and clients on "
          "the same machine")
    return {"results": results, "ratios": ratios, "soak": soak, "contended": cpu["contended"]}


def print_rows(name: str, rows: dict[int, dict]) -> None:
    for n, r in rows.items():
        print(f"{name:<38} {n:>3} clients  {r['requests_per_s']:8.1f} req/s  p50 {r['p50_ms']:7.1f} ms  "
              f"p99 {r['p99_ms']:7.1f} ms  errors {r['errors']}")


def summary(results: dict[str, dict[int, dict]], clients: list[int]) -> dict[str, float]:
    a, b, c = (results[k] for k in results)
    top = max(clients)
    ratios = {f"(a)/(c) req/s at {top}": a[top]["requests_per_s"] / c[top]["requests_per_s"],
              f"(a)/(b) req/s at {top}": a[top]["requests_per_s"] / b[top]["requests_per_s"]}
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x")
    return ratios


if __name__ == "__main__":
    main()
