"""`emotion-serve`: TEI's API over a tiny tuned model, its errors and metrics, dynamic batching, the page in
headless Chromium, SIGTERM."""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from emotion_classifier import EmotionClassifier
from emotion_classifier.serving.app import Limits, create_app
from emotion_classifier.serving.batcher import Batcher

from .conftest import ROOT
from .test_multi_machine import free_port

TEXTS = ["so happy glad", "angry mad hate", "the day was ok"]


def wait_ready(client, timeout=60):
    deadline = time.time() + timeout
    while client.get("/health").status_code != 200:
        assert time.time() < deadline, "the model never loaded"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def client(tuned_model):
    app = create_app(lambda: EmotionClassifier.load(tuned_model, require_thresholds=True),
                     Limits(max_client_batch_size=4, max_body_bytes=2000))
    with TestClient(app) as c:
        wait_ready(c)
        yield c


def test_predict_answers_in_tei_shape(client, tuned_model):
    probs = EmotionClassifier.load(tuned_model).predict_proba(TEXTS)
    one = client.post("/predict", json={"inputs": TEXTS[0]}).json()  # one text: one list
    assert [sorted(x) for x in one] == [["label", "score"]] * 3
    assert [x["score"] for x in one] == sorted((x["score"] for x in one), reverse=True)
    many = client.post("/predict", json={"inputs": TEXTS}).json()  # several: a list per text, in order
    labels = ["joy", "anger", "neutral"]
    for row, answer in zip(probs, many):
        np.testing.assert_allclose([{x["label"]: x["score"] for x in answer}[n] for n in labels], row, atol=1e-5)
    raw = client.post("/predict", json={"inputs": TEXTS[0], "raw_scores": True, "truncate": True}).json()
    np.testing.assert_allclose([1 / (1 + np.exp(-x["score"])) for x in raw], [x["score"] for x in one], atol=1e-5)


def test_classify_keeps_the_labels_over_their_tuned_thresholds(client, tuned_model):
    clf = EmotionClassifier.load(tuned_model, require_thresholds=True)
    answers = client.post("/classify", json={"inputs": TEXTS, "all_scores": True}).json()
    for expected, answer in zip(clf.predict(TEXTS), answers):
        assert [x["label"] for x in answer["labels"]] == [label for label, _ in expected]
        assert {x["label"]: x["threshold"] for x in answer["scores"]} == dict(zip(clf.labels,
                                                                                 map(float, clf.thresholds)))
    assert "scores" not in client.post("/classify", json={"inputs": "so happy"}).json()


@pytest.mark.parametrize("body, status, error_type", [
    (b"{not json", 422, "Validation"),
    ({"text": "hi"}, 422, "Validation"),
    ({"inputs": 3}, 422, "Validation"),
    ({"inputs": ["ok", 2]}, 422, "Validation"),
    ({"inputs": []}, 422, "Empty"),
    ({"inputs": ["fine", "  "]}, 422, "Empty"),
    ({"inputs": "hi", "raw_scores": "yes"}, 422, "Validation"),
    ({"inputs": ["a"] * 5}, 413, "Validation"),  # max_client_batch_size 4
    ({"inputs": "happy " * 400}, 413, "Validation"),  # body over 2000 bytes
    ({"inputs": "happy " * 40, "truncate": False}, 413, "Validation"),  # past max_length, truncation refused
])
def test_errors_are_json_with_their_status_and_counted(client, body, status, error_type):
    def errors():
        m = re.search(rf'emotion_errors_total{{error_type="{error_type}"}} (\S+)', client.get("/metrics").text)
        return float(m.group(1)) if m else 0.0
    before = errors()
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post("/predict", content=data, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error", "error_type"} and r.json()["error_type"] == error_type
    assert "Traceback" not in r.text
    assert errors() == before + 1
    counted = rf'emotion_requests_total{{route="/predict",status="{status}"}} [1-9]'
    assert re.search(counted, client.get("/metrics").text)


def test_unknown_route_and_method_are_json_too(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error_type"] == "NotFound"
    assert client.get("/predict").status_code == 405 and "error" in client.get("/predict").json()


def test_info_health_metrics_and_the_page(client):
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["labels"] == ["joy", "anger", "neutral"] and info["max_client_batch_size"] == 4
    assert info["model_type"]["classifier"]["id2label"] == {"0": "joy", "1": "anger", "2": "neutral"}
    assert set(info["thresholds"]) == set(info["labels"]) and info["backend"] == "torch"
    client.post("/predict", json={"inputs": ["so happy", "so mad"]})
    text = client.get("/metrics").text
    assert "emotion_batch_size_bucket" in text and 'emotion_request_seconds_count{route="/predict"}' in text
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text and page.headers["content-type"].startswith("text/html")


def test_503_while_the_model_loads(tuned_model):
    gate = threading.Event()

    def load():
        assert gate.wait(30)
        return EmotionClassifier.load(tuned_model)
    with TestClient(create_app(load)) as c:
        for r in (c.get("/health"), c.post("/predict", json={"inputs": "hi"}), c.get("/info")):
            assert r.status_code == 503 and r.json()["error_type"] == "Unhealthy"
        gate.set()
        wait_ready(c)
        assert c.post("/predict", json={"inputs": "hi"}).status_code == 200


def run_batcher(max_batch, max_wait_ms, requests, score=None):
    """Submits every request at once; returns (answers, the batch sizes scored)."""
    sizes = []

    def lengths(texts):  # a score per text: its length, so each answer shows whose it is
        time.sleep(0.01)
        return np.array([[len(t)] for t in texts])

    async def go():
        b = Batcher(score or lengths, max_batch, max_wait_ms, on_batch=sizes.append)
        task = asyncio.create_task(b.run())
        answers = await asyncio.gather(*(b.submit(r) for r in requests), return_exceptions=True)
        task.cancel()
        return answers
    return asyncio.run(go()), sizes


def test_requests_arriving_together_are_scored_as_one_batch():
    requests = [["x" * (i + 1)] for i in range(10)] + [["a", "bb", "ccc"]]
    answers, sizes = run_batcher(4, 50, requests)
    assert [a[:, 0].tolist() for a in answers] == [[i + 1] for i in range(10)] + [[1, 2, 3]]  # each its own
    assert sum(sizes) == 13 and max(sizes) <= 5 and len(sizes) <= 4  # at most 4 texts, or one request's 3
    _, alone = run_batcher(1, 0, requests)  # batching off
    assert alone == [1] * 10 + [3]


def test_a_failing_batch_fails_its_requests_and_the_next_batch_scores():
    calls = []

    def flaky(texts):
        calls.append(len(texts))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return np.zeros((len(texts), 1))
    answers, _ = run_batcher(2, 0, [["a"], ["b"], ["c"]], score=flaky)
    assert isinstance(answers[0], RuntimeError) and isinstance(answers[1], RuntimeError)
    assert answers[2].shape == (1, 1)


# ---------------------------------------------------------------- the command, a browser, SIGTERM


def serve(model_dir, port, *args):
    cmd = [sys.executable, "-m", "emotion_classifier.serving.serve", "--model-dir", str(model_dir), "--port",
           str(port), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, EMOTION_CLASSIFIER_THREADS="1"))


def wait_http(port, proc, timeout=60):
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("emotion-serve never became healthy")


def chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):  # .ci/run installs it: in CI a missing browser is a failure, not a skip
            pytest.fail("no chromium: apt-get install -y chromium")
        pytest.skip("needs Debian's chromium (apt-get install -y chromium; .ci/run installs it)")
    return browser


@pytest.mark.slow
def test_the_command_serves_the_page_in_a_browser_and_stops_on_sigterm(tuned_model, tmp_path):
    import httpx

    browser = chromium()
    port = free_port()
    proc = serve(tuned_model, port, "--max-client-batch-size", "8000")  # backend auto: onnx int8, as tuned
    try:
        wait_http(port, proc)
        base = f"http://127.0.0.1:{port}"
        info = httpx.get(f"{base}/info").json()
        assert info["backend"] == "onnx" and info["quantized"] and "onnx_int8" in info["thresholds_source"]
        r = httpx.post(f"{base}/predict", json={"inputs": ["I love it", "so sad"]})
        assert r.status_code == 200 and len(r.json()) == 2 and len(r.json()[0]) == 3
        expected = httpx.post(f"{base}/classify", json={"inputs": "so happy glad", "all_scores": True}).json()

        shots = ROOT / "build/test-artifacts"
        shots.mkdir(parents=True, exist_ok=True)
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--virtual-time-budget=10000", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=900,700"]
        page = f"{base}/?text=so%20happy%20glad"  # the page fills its box and submits it, as a click would
        dom = subprocess.run([browser, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=120,
                             check=True).stdout
        subprocess.run([browser, *flags, f"--screenshot={shots / 'serve-page.png'}", page], capture_output=True,
                       timeout=120, check=True)
        assert 'data-done="1"' in dom, dom[-2000:]
        rows = re.findall(r'<div class="row( over)?" data-label="(\w+)" data-score="([\d.e-]+)">.*?'
                          r'<div class="bar" style="width: ([\d.]+)%;">', dom)
        assert [(label, over == " over") for over, label, _, _ in rows] == [
            (s["label"], s["score"] >= s["threshold"]) for s in expected["scores"]]
        for _, _, score, width in rows:
            assert abs(float(width) - 100 * float(score)) < 0.1
        assert (shots / "serve-page.png").stat().st_size > 5_000
        assert 'route="/",status="200"' in httpx.get(f"{base}/metrics").text

        # a slow client (half a request, then silence) and a vanished one hold up no one
        import socket

        head = b"POST /predict HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(head % 100 + b'{"inputs": ')
        gone = socket.create_connection(("127.0.0.1", port))
        gone.sendall(head % 16 + b'{"inputs": "hi"}')
        gone.close()
        t0 = time.time()
        assert httpx.post(f"{base}/predict", json={"inputs": "so sad"}).status_code == 200 and time.time() - t0 < 5
        slow.close()

        # SIGTERM while a large request is scored: it is answered before the server stops
        answer = {}
        texts = ["so happy glad and the day was ok " * 3] * 8000  # ~0.6 s to score here
        inflight = threading.Thread(target=lambda: answer.update(
            r=httpx.post(f"{base}/predict", json={"inputs": texts}, timeout=120)))
        inflight.start()
        time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=40)
    inflight.join(60)
    assert answer["r"].status_code == 200 and len(answer["r"].json()) == 8000
    assert answer["r"].elapsed.total_seconds() > 0.1  # still in flight when SIGTERM came
    # uvicorn finishes the requests in flight, shuts the app down, then dies of the signal it caught (or exits 0)
    assert proc.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in out, out[-3000:]
    assert "Traceback" not in out and "Quantization parameters" not in out and "404 NotFound" not in out


def test_the_command_refuses_a_model_without_thresholds_in_one_line(tuned_model, tmp_path):
    d = tmp_path / "untuned"
    shutil.copytree(tuned_model, d)
    (d / "thresholds.json").unlink()
    proc = serve(d, free_port(), "--backend", "torch")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "thresholds.json: no tuned thresholds" in errors[0], out
    r = subprocess.run([sys.executable, "-m", "emotion_classifier.serving.serve", "--model-dir",
                        str(tmp_path / "none")], capture_output=True, text=True, check=False)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "no trained model" in r.stderr
