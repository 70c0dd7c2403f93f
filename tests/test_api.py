"""The prediction service on a real uvicorn server (loopback only): endpoints, errors, auth, rate limit, webhook,
schemathesis against the live OpenAPI schema, and a bounded load test."""
import json, os, re, shutil, socket, subprocess, sys, tempfile, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import httpx
import numpy as np
import pytest
from conftest import rehashed_copy
from itff.data import load_ohlcv
from itff.config import ExperimentConfig
from itff.experiment import run_experiment
from itff.features import engineer_features
from itff.predictor import Predictor

TOKEN, SECRET = "test-token-123", "tv-secret"


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    "Two small trained bundles (BTCUSDT 1h direction/level_up, LSTM) and a corrupt third one."
    d = tmp_path_factory.mktemp("models")
    for lab in ("direction", "level_up"):
        run_experiment(ExperimentConfig("BTCUSDT", "1h", lab, "lstm", window=24, epochs=1, mc_samples=10, n_boot=10, model_kw=dict(units=8)),
                       models_dir=d, reports_dir=d/"reports", progress=False, log=lambda s: None)
    bad = d/"training/ETHUSDT_1h_direction_lstm"
    shutil.copytree(d/"training/BTCUSDT_1h_direction_lstm", bad)
    (bad/"scaler.json").write_text((bad/"scaler.json").read_text().replace("0", "9", 1))
    return d


def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


class Server:
    "uvicorn serving itff.api:app in a subprocess on a free loopback port."
    def __init__(self, models, workers:int=1, **env):
        self.port = free_port(); self.url = f"http://127.0.0.1:{self.port}"
        full = {**os.environ, "ITFF_MODELS_DIR": str(models), "ITFF_API_TOKEN": "", "ITFF_WEBHOOK_SECRET": "", "ITFF_API_RATE_LIMIT": "",
                "ITFF_PREDICTION_DB": str(Path(tempfile.mkdtemp(prefix="itff_log_"))/"predictions.db"), **env}   # never the working folder
        self.db = Path(full["ITFF_PREDICTION_DB"])
        self.proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "itff.api:app", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
                                      "--workers", str(workers)],
                                     env=full, stdout=(log := tempfile.TemporaryFile("w+")), stderr=subprocess.STDOUT, text=True)
        self.log = log   # a file, not a pipe: a chatty server never blocks on a full pipe
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200: return
            except httpx.HTTPError: pass
            if self.proc.poll() is not None: raise RuntimeError(self.output())
            time.sleep(0.3)
        self.stop(); raise RuntimeError("server did not become ready")

    def output(self) -> str: self.log.seek(0); return self.log.read()

    def stop(self):
        self.proc.terminate()
        try: self.proc.wait(10)
        except subprocess.TimeoutExpired: self.proc.kill()
        return self.output()


@pytest.fixture(scope="module")
def secured(models):
    s = Server(models, ITFF_API_TOKEN=TOKEN, ITFF_WEBHOOK_SECRET=SECRET, ITFF_API_MAX_BODY="300000")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def window():
    return engineer_features(load_ohlcv("BTCUSDT", "1h", start="2025-08-01")).iloc[-24:].to_numpy()


def post(server, body, token=TOKEN, path="/predict", **kw):
    return httpx.post(server.url + path, json=body, headers={"X-API-Token": token} if token else {}, timeout=30, **kw)


def test_health_ready_metrics(secured):
    h = httpx.get(secured.url + "/health").json()
    assert h["status"] == "ok" and h["ready"] is True
    assert {(b["symbol"], b["label"]) for b in h["bundles"]} == {("BTCUSDT", "direction"), ("BTCUSDT", "level_up")}
    assert all(len(b["sha256"]) == 64 and b["created_at"] for b in h["bundles"])
    assert "scaler.json fails its sha256 check" in h["failed"]["ETHUSDT_1h_direction_lstm"]
    assert httpx.get(secured.url + "/ready").json() == {"ready": True, "bundles": 2, "failed": 1}
    m = httpx.get(secured.url + "/metrics")
    assert m.headers["content-type"].startswith("text/plain") and "itff_model_load_failures_total 1.0" in m.text
    assert "itff_bundles_loaded 2.0" in m.text


def test_predict_sequence_matches_predictor(secured, models, window):
    r = post(secured, {"symbol": "btc/usdt", "label": "direction", "model_type": "lstm", "mc_samples": 30, "sequence": window.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    local = Predictor.load("BTCUSDT", "1h", "direction", "lstm", models_dir=models).predict_window(window, 30)
    for k in ("probability", "mc_mean", "mc_std", "entropy", "mutual_info", "decision", "threshold"):
        assert body[k] == pytest.approx(local[k], abs=1e-6), k
    assert body["skill"] == local["skill"] in ("ok", "no_skill") and body["uncertain"] == local["uncertain"]
    assert body["max_uncertainty"] == local["max_uncertainty"]
    assert body["model"]["sha256"] == local["model"]["sha256"] and body["request_id"] == r.headers["x-request-id"]
    assert body["latency_ms"] > 0
    m = httpx.get(secured.url + "/metrics").text
    assert 'itff_predictions_total{label="direction",model="lstm",symbol="BTCUSDT"}' in m
    assert 'itff_http_request_seconds_bucket{le="0.005",route="/predict"}' in m


def test_predict_from_candles(secured):
    bars = load_ohlcv("BTCUSDT", "1h", start="2025-09-15").iloc[-300:]
    candles = [{"timestamp": t.isoformat(), **{k: float(v) for k, v in row.items()}} for t, row in bars.iterrows()]
    r = post(secured, {"symbol": "BTCUSDT", "label": "level_up", "candles": candles})
    assert r.status_code == 200, r.text
    assert r.json()["bar_time"] == str(bars.index[-1]) and 0 < r.json()["probability"] < 1
    assert r.json()["candles_used"] == 300
    arrays = [[int(t.value // 10**6), *map(float, row)] for t, row in zip(bars.index, bars.to_numpy())]   # as ccxt.fetch_ohlcv returns them
    a = post(secured, {"symbol": "BTCUSDT", "target": "level_up", "candles": arrays})
    assert a.status_code == 200 and a.json()["probability"] == pytest.approx(r.json()["probability"], abs=1e-12)
    short = post(secured, {"symbol": "BTCUSDT", "target": "level_up", "candles": arrays[-(24 + 180):]})
    assert short.status_code == 200 and "recommended" in short.json()["warning"] and short.json()["candles_used"] == 204
    for i in (1, 5, 7): arrays[i] = arrays[i][:4]                  # three rows too short: one error, naming the first and the count
    bad = post(secured, {"symbol": "BTCUSDT", "target": "level_up", "candles": arrays})
    assert bad.status_code == 422 and len(bad.json()["detail"]) == 1, bad.text
    assert bad.json()["detail"][0]["loc"] == ["body", "candles"] and "row 2:" in bad.text and "3 of 300 rows are malformed" in bad.text
    candles[-1]["high"] = 1.0   # high below open/close
    r = post(secured, {"symbol": "BTCUSDT", "label": "level_up", "candles": candles})
    assert r.status_code == 422 and "column 'high'" in r.text and r.json()["detail"][0]["loc"] == ["body", "candles"]


def test_auth(secured, models, window):
    body = {"symbol": "BTCUSDT", "sequence": window.tolist()}
    assert post(secured, body, token=None).status_code == 401
    assert post(secured, body, token="wrong").status_code == 401
    assert post(secured, body).status_code == 200
    open_server = Server(models)
    try:
        assert post(open_server, body, token=None).status_code == 200     # auth off when ITFF_API_TOKEN is unset
        assert post(open_server, {"passphrase": None, "ticker": "BTCUSDT", "interval": "60"}, token=None, path="/webhook/tradingview").status_code == 200
    finally: open_server.stop()


@pytest.mark.parametrize("change, loc, words", [
    ({"symbol": "DOGEUSDT"}, ["body", "symbol"], "no loaded model for symbol 'DOGEUSDT'"),
    ({"label": "level_down"}, ["body", "label"], "no loaded model for label 'level_down'"),
    ({"target": "moon"}, ["body", "target"], "Input should be"),
    ({"model_type": "gru"}, ["body", "model_type"], "Input should be 'lstm', 'transformer', 'gbm'"),
    ({"timeframe": "4h"}, ["body", "timeframe"], "no loaded model for timeframe '4h'; loaded: ['1h']"),
    ({"model_type": "transformer"}, ["body", "model_type"], "no loaded model for model_type 'transformer'"),
    ({"mc_samples": 0}, ["body", "mc_samples"], "greater than or equal to 1"),
    ({"mc_samples": 201}, ["body", "mc_samples"], "less than or equal to 200"),
    ({"sequence": "cut"}, ["body", "sequence"], "expected shape (24, 21) = window × features, got (20, 21)"),
    ({"sequence": "narrow"}, ["body", "sequence"], "expected shape (24, 21) = window × features, got (24, 20)"),
    ({"candles": []}, ["body"], "exactly one of 'sequence'"),
    ({"unexpected": 1}, ["body", "unexpected"], "Extra inputs are not permitted")])
def test_validation_errors_name_the_field(secured, window, change, loc, words):
    seq = {"cut": window[:20].tolist(), "narrow": window[:, :20].tolist()}
    body = {"symbol": "BTCUSDT", "label": "direction", "model_type": "lstm", "sequence": window.tolist(),
            **{k: seq.get(v, v) if isinstance(v, str) else v for k, v in change.items()}}
    if "target" in change: body.pop("label")              # the old spelling alone: its error names it
    r = post(secured, body)
    assert r.status_code == 422, r.text
    d = r.json()["detail"][0]
    assert d["loc"][:len(loc)] == loc and words in d["msg"], d


def test_non_finite_and_oversized_bodies(secured, window):
    for bad in ("NaN", "Infinity", "-Infinity"):
        raw = json.dumps({"symbol": "BTCUSDT", "sequence": window.tolist()}).replace(str(window[3, 5]), bad, 1)
        r = httpx.post(secured.url + "/predict", content=raw, headers={"X-API-Token": TOKEN, "content-type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "sequence"], (bad, r.text)
    huge = b'{"symbol": "BTCUSDT", "sequence": [' + b"[1.0]," * 60_000 + b"[1.0]]}"
    r = httpx.post(secured.url + "/predict", content=huge, headers={"X-API-Token": TOKEN, "content-type": "application/json"})
    assert r.status_code == 413 and "exceeds the cap of 300000 bytes" in r.text


def test_chunked_body_over_the_cap_is_413_without_reading_it_all(secured):
    "No Content-Length: the cap applies to the chunks as they arrive; the app stops reading once it is passed (nothing is buffered)."
    sent = [0]
    def chunks():   # 10 MB offered in 64 kB chunks
        for _ in range(160):
            sent[0] += 1
            yield b" " * 65_536
    r = httpx.post(secured.url + "/predict", content=chunks(), headers={"X-API-Token": TOKEN, "content-type": "application/json"}, timeout=30)
    assert r.status_code == 413 and "exceeds the cap" in r.text
    assert "content-length" not in {k.lower() for k in r.request.headers} and r.request.headers["transfer-encoding"] == "chunked"


def test_models_endpoint_is_enough_to_build_a_request(secured, models):
    "A client that knows only GET /models builds a sequence request and gets the Predictor's answer."
    cards = httpx.get(secured.url + "/models", headers={"X-API-Token": TOKEN}).json()
    card = next(c for c in cards if c["label"] == "level_up")
    assert {c["id"] for c in cards} == {"BTCUSDT_1h_direction_lstm", "BTCUSDT_1h_level_up_lstm"}    # the corrupt bundle is not offered
    assert card["candles_needed"] > card["window"] and 0 < card["threshold"] <= 1 and card["test"]["n"] > 0
    candles = load_ohlcv(card["symbol"], card["timeframe"], start="2025-06-01")
    seq = engineer_features(candles)[card["features"]].iloc[-card["window"]:].to_numpy()
    r = post(secured, {"symbol": card["symbol"], "timeframe": card["timeframe"], "label": card["label"], "model_type": card["model_type"],
                       "mc_samples": 30, "sequence": seq.tolist()})
    assert r.status_code == 200, r.text
    local = Predictor.load(path=models/"training"/card["id"]).predict_window(seq, 30)
    assert r.json()["probability"] == pytest.approx(local["probability"], abs=1e-6)
    assert r.json()["model"]["sha256"] == card["sha256"]
    assert httpx.get(secured.url + "/models").status_code == 401


def test_unexpected_error_is_500_with_request_id_and_no_trace(models, window, monkeypatch):
    "In-process (a fault cannot be injected into a subprocess): the real app, its handlers and middleware."
    from fastapi.testclient import TestClient
    from itff import api
    monkeypatch.setattr(api.Predictor, "finish_many", lambda *a, **k: 1 / 0)   # in the batcher's worker thread
    cfg = api.ApiConfig(models, None, None, None, 1_000_000, "bundled")
    with TestClient(api.create_app(cfg), raise_server_exceptions=False) as c:
        while c.get("/ready").status_code == 503: time.sleep(0.2)
        r = c.post("/predict", json={"symbol": "BTCUSDT", "sequence": window.tolist()}, headers={"X-Request-ID": "abc123"})
    assert r.status_code == 500 and r.json() == {"detail": "internal server error", "request_id": "abc123"}
    assert "ZeroDivisionError" not in r.text and "Traceback" not in r.text and r.headers["x-request-id"] == "abc123"


def test_rate_limit(models, window):
    "The limit is per client over every route together (not 5 on each), and 429s are counted under their route."
    s = Server(models, ITFF_API_RATE_LIMIT="5/minute")
    try:
        codes = [post(s, {"symbol": "BTCUSDT", "sequence": window.tolist()}, token=None).status_code for _ in range(3)]
        codes += [httpx.get(s.url + "/models").status_code for _ in range(2)]
        codes += [post(s, {"ticker": "BTCUSDT", "interval": "60"}, token=None, path="/webhook/tradingview").status_code,
                  httpx.get(s.url + "/models").status_code]
        assert codes == [200] * 5 + [429, 429], codes
        r = post(s, {"symbol": "BTCUSDT", "sequence": window.tolist()}, token=None)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and "rate limit exceeded" in r.json()["detail"]
        assert httpx.get(s.url + "/health").status_code == 200          # health is never rate-limited
        m = httpx.get(s.url + "/metrics").text
        assert 'route="/predict",status="429"} 1.0' in m and 'route="/models",status="429"} 1.0' in m
        assert 'route="/webhook/tradingview",status="429"} 1.0' in m and 'route="unmatched"' not in m
    finally: s.stop()


def test_tradingview_webhook(secured):
    url = secured.url + "/webhook/tradingview"
    j = httpx.post(url, json={"passphrase": SECRET, "ticker": "BINANCE:BTCUSDT", "interval": "60", "time": "2025-09-30T23:00:00Z",
                              "close": 114048.93, "target": "level_up", "strategy": "itff"})
    assert j.status_code == 200, j.text
    assert j.json()["symbol"] == "BTCUSDT" and j.json()["label"] == "level_up" and j.json()["alert_stale"] is False
    t = httpx.post(url, content="passphrase=tv-secret\nticker=BTCUSDT\ninterval=1H\ntime=2026-01-05T10:00:00Z", headers={"content-type": "text/plain"})
    assert t.status_code == 200 and t.json()["alert_stale"] is True and t.json()["timeframe"] == "1h"
    assert httpx.post(url, json={"passphrase": "guess", "ticker": "BTCUSDT", "interval": "60"}).status_code == 401
    assert httpx.post(url, content="ticker=BTCUSDT interval=60").status_code == 401
    r = httpx.post(url, json={"passphrase": SECRET, "ticker": "BTCUSDT", "interval": "240"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "interval"]
    r = httpx.post(url, json={"passphrase": SECRET, "ticker": "BTCUSDT", "interval": "60", "time": "yesterday-ish"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "time"]
    assert httpx.post(url, content="just buy").status_code == 401                   # no passphrase in what does not parse
    assert httpx.post(url, content=f"passphrase={SECRET} just buy").json()["detail"][0]["loc"] == ["body", "ticker"]
    wrong = httpx.post(url, json={"passphrase": "guess", "ticker": "<script>" * 3, "interval": "240"})
    assert wrong.status_code == 401 and "<script>" not in wrong.text                 # authenticated before validated
    assert httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}).status_code == 401
    assert httpx.post(url, json={"passphrase": SECRET, "ticker": "BTCUSDT"}).status_code == 422   # then validated


def test_schemathesis_no_5xx_and_schema_conformance(secured, tmp_path):
    "Schemathesis's CLI against the live /openapi.json: generated requests to every operation, no 5xx, responses match the schema."
    st = Path(sys.executable).parent/"schemathesis"
    r = subprocess.run([str(st), "run", secured.url + "/openapi.json", "--checks", "not_a_server_error,response_schema_conformance",
                        "-H", f"X-API-Token: {TOKEN}", "--max-examples", "40", "--seed", "1", "--request-timeout", "30"],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "NO_COLOR": "1"}, cwd=tmp_path)  # its cache stays out of the repo
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "Tested: 6" in r.stdout                                        # /health, /ready, /metrics, /models, /predict, /webhook
    n = re.search(r"(\d+) generated, (\d+) passed", r.stdout)
    assert n and n[1] == n[2] and int(n[1]) > 100, r.stdout[-1500:]


def test_bounded_load(models, window):
    "16 concurrent clients for 20 s on loopback: no errors, and /health still answers."
    s = Server(models)
    body, deadline, results, lock = {"symbol": "BTCUSDT", "sequence": window.tolist()}, time.time() + 20, [], threading.Lock()
    def client():
        with httpx.Client(base_url=s.url, timeout=10) as c:
            ok = bad = 0
            while time.time() < deadline:
                try: ok, bad = (ok + 1, bad) if c.post("/predict", json=body).status_code == 200 else (ok, bad + 1)
                except httpx.HTTPError: bad += 1
            with lock: results.append((ok, bad))
    try:
        threads = [threading.Thread(target=client) for _ in range(16)]
        for t in threads: t.start()
        for t in threads: t.join(40)
        assert len(results) == 16 and sum(b for _, b in results) == 0, results
        assert sum(o for o, _ in results) > 100
        assert httpx.get(s.url + "/health", timeout=5).json()["status"] == "ok"
    finally: s.stop()


@pytest.mark.parametrize("name", ["direction.json", "level_up.json", "plain.txt"])
def test_shipped_templates_work_as_tradingview_fills_them(secured, name):
    text = (Path(__file__).parents[1]/"tradingview/templates"/name).read_text()
    filled = (text.replace("CHANGE-ME", SECRET).replace("{{ticker}}", "BINANCE:BTCUSDT").replace("{{interval}}", "60")
                  .replace("{{time}}", "2025-09-30T23:00:00Z").replace("{{close}}", "114048.93"))
    ctype = "application/json" if name.endswith(".json") else "text/plain"
    r = httpx.post(secured.url + "/webhook/tradingview", content=filled, headers={"content-type": ctype}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["label"] == ("level_up" if "level_up" in name else "direction") and r.json()["alert_stale"] is False


def test_skill_gate_labels_or_refuses(models, window, tmp_path):
    "A bundle whose validation showed no skill is served labelled no_skill, or refused with ITFF_API_REFUSE_NO_SKILL=1."
    from itff.artifacts import load_bundle, write_bundle
    b = load_bundle(models/"training/BTCUSDT_1h_direction_lstm")
    skill = {**b.meta["skill"], "has_skill": False, "p_value": 0.4}
    write_bundle(tmp_path/"training/BTCUSDT_1h_direction_lstm", b.models, b.scaler, b.calibrator, {**b.meta, "skill": skill}, b.metrics)
    served = Server(tmp_path)
    try:
        r = post(served, {"symbol": "BTCUSDT", "target": "direction", "sequence": window.tolist()}, token=None)
        assert r.status_code == 200 and r.json()["skill"] == "no_skill"
    finally: served.stop()
    refusing = Server(tmp_path, ITFF_API_REFUSE_NO_SKILL="1")
    try:
        h = httpx.get(refusing.url + "/health").json()
        assert h["bundles"] == [] and "no skill" in h["failed"]["BTCUSDT_1h_direction_lstm"]
        r = post(refusing, {"symbol": "BTCUSDT", "target": "direction", "sequence": window.tolist()}, token=None)
        assert r.status_code == 422 and "no loaded model" in r.text
    finally: refusing.stop()


def start_redis():
    "A real redis-server on a free loopback port (Debian's package; `make test` installs it)."
    exe = shutil.which("redis-server")
    if exe is None: pytest.fail("redis-server is not installed: run `make system-deps` (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2): return proc, port
        except OSError: time.sleep(0.1)
    proc.kill(); pytest.fail("redis-server did not start")


def predictions_by_worker(multiproc_dir) -> dict:
    "Predictions counted by each worker process, read from its own prometheus_client multiprocess file."
    from prometheus_client.mmap_dict import MmapedDict
    out = {}
    for f in Path(multiproc_dir).glob("counter_*.db"):
        vals = [v for key, v, *_ in MmapedDict.read_all_values_from_file(str(f)) if json.loads(key)[1] == "itff_predictions_total"]
        out[f.stem.split("_")[1]] = sum(vals)
    return out


def test_two_workers_share_metrics_and_the_rate_limit(models, window, tmp_path):
    "uvicorn --workers 2: Prometheus counts add up across workers, and a Redis-backed limit holds across both."
    redis, port = start_redis()
    mp = tmp_path/"prom"; mp.mkdir()
    s = Server(models, workers=2, PROMETHEUS_MULTIPROC_DIR=str(mp), ITFF_API_RATE_LIMIT="8/minute", ITFF_API_RATE_LIMIT_STORAGE=f"redis://127.0.0.1:{port}")
    try:
        ok, deadline = 0, time.time() + 120                 # every worker loaded: /ready answers 200 on 30 fresh connections in a row
        while ok < 30 and time.time() < deadline:
            ok = ok + 1 if httpx.get(s.url + "/ready", headers={"Connection": "close"}).status_code == 200 else 0
        body = {"symbol": "BTCUSDT", "sequence": window.tolist()}
        def call(_):
            with httpx.Client(timeout=60) as c: return c.post(s.url + "/predict", json=body).status_code
        with ThreadPoolExecutor(8) as ex: codes = list(ex.map(call, range(16)))     # concurrent: both workers accept some
        assert codes.count(200) == 8 and codes.count(429) == 8, codes              # one limit for both workers
        served = predictions_by_worker(mp)
        assert sum(1 for n in served.values() if n > 0) == 2, served                # both workers answered …
        text = httpx.get(s.url + "/metrics").text
        line = next(l for l in text.splitlines() if l.startswith('itff_predictions_total{label="direction",model="lstm",symbol="BTCUSDT"}'))
        assert float(line.split()[-1]) == 8.0 == sum(served.values()), line         # … and /metrics adds their counts up
    finally:
        s.stop(); redis.kill()


def test_bad_inputs_found_by_probing_are_422_naming_the_field(secured, window):
    "Issue 22's probes: ragged or huge sequences, booleans as numbers, words and other eras as times, deep nesting, no token."
    seq = window.tolist()
    ragged = post(secured, {"symbol": "BTCUSDT", "sequence": seq[:-1] + [seq[-1][:20]]})
    assert ragged.status_code == 422 and ragged.json()["detail"][0]["loc"] == ["body", "sequence"], ragged.text
    huge = [row[:] for row in seq]; huge[5][3] = 1e38                       # finite, but past float32 once scaled
    r = post(secured, {"symbol": "BTCUSDT", "sequence": huge})
    assert r.status_code == 422 and "row 5, feature 3" in r.json()["detail"][0]["msg"], r.text
    r = post(secured, {"symbol": "BTCUSDT", "sequence": seq, "mc_samples": True})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "mc_samples"], r.text
    for t in ("now", "today", -1, "0001-01-01T00:00:00Z", "9999-12-31T00:00:00Z", 10**20):
        r = post(secured, {"symbol": "BTCUSDT", "sequence": seq, "bar_time": t})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "bar_time"], (t, r.text)
        assert "between 1970 and 2099" in r.json()["detail"][0]["msg"] and "Out of bounds" not in r.text, r.text
    bars = load_ohlcv("BTCUSDT", "1h", start="2025-09-15").iloc[-300:]
    candles = [[int(t.value // 10**6), *map(float, row)] for t, row in zip(bars.index, bars.to_numpy())]
    candles[0][0] = "0001-01-01T00:00:00Z"
    r = post(secured, {"symbol": "BTCUSDT", "label": "level_up", "candles": candles})
    assert r.status_code == 422 and "row 1: timestamp 0001-01-01" in r.text and "outside 1970" in r.text, r.text
    deep = b'{"symbol": "BTCUSDT", "sequence": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    r = httpx.post(secured.url + "/predict", content=deep, headers={"X-API-Token": TOKEN, "content-type": "application/json"})
    assert r.status_code == 422 and "nested too deeply" in r.json()["detail"][0]["msg"], r.text
    assert httpx.post(secured.url + "/predict", content=b"{oops", headers={"content-type": "application/json"}).status_code == 401
    for resp in (ragged, r):
        json.loads(resp.text, parse_constant=lambda c: pytest.fail(f"{c} in a response"))   # strict JSON


def test_concurrent_requests_are_batched_and_answered_as_alone(models, window):
    ("16 clients at once: fewer MC passes than requests, every answer equals the Predictor's on that window alone, and "
     "the prediction log (group commits) holds each answer once.")
    s = Server(models, ITFF_API_BATCH_WAIT_MS="20")
    rng = np.random.default_rng(1)
    windows = [window * (1 + 0.01 * rng.normal(size=window.shape)) for _ in range(16)]
    try:
        with ThreadPoolExecutor(16) as ex:
            answers = list(ex.map(lambda w: post(s, {"symbol": "BTCUSDT", "sequence": w.tolist(), "mc_samples": 10}), windows))
        local = Predictor.load("BTCUSDT", "1h", "direction", "lstm", models_dir=models)
        for w, a in zip(windows, answers):
            assert a.status_code == 200, a.text
            want = local.predict_window(w, 10)
            for k in ("probability", "mc_mean", "mc_std", "mutual_info", "ood_score"):
                assert a.json()[k] == pytest.approx(want[k], abs=1e-6), k
            assert a.json()["decision"] == want["decision"]
        m = httpx.get(s.url + "/metrics").text
        passes = float(re.search(r"^itff_batch_size_count (\S+)", m, re.M)[1])
        assert 1 <= passes < 16, m
        from itff.predlog import PredictionLog
        with PredictionLog(s.db, checkpoint_every=0) as log: rows = log.rows().set_index("request_id")
        assert sorted(rows.index) == sorted(a.json()["request_id"] for a in answers)
        for a in answers: assert rows.loc[a.json()["request_id"], "probability"] == pytest.approx(a.json()["probability"], abs=1e-12)
    finally: s.stop()


def test_overload_is_shed_with_503_and_retry_after(models, window):
    "With a 1 ms deadline, requests arriving while a pass runs are refused at once with Retry-After, and counted."
    s = Server(models, ITFF_API_DEADLINE_MS="1", ITFF_API_BATCH_MAX="2")
    try:
        with ThreadPoolExecutor(16) as ex:
            answers = list(ex.map(lambda _: post(s, {"symbol": "BTCUSDT", "sequence": window.tolist(), "mc_samples": 200},
                                                 token=None), range(64)))
        codes = [a.status_code for a in answers]
        assert set(codes) == {200, 503}, codes
        shed = next(a for a in answers if a.status_code == 503)
        assert int(shed.headers["retry-after"]) >= 1 and "ITFF_API_DEADLINE_MS" in shed.json()["detail"]
        m = httpx.get(s.url + "/metrics").text
        assert f'itff_requests_shed_total{{route="/predict"}} {float(codes.count(503))}' in m, m
        assert httpx.get(s.url + "/health").status_code == 200
    finally: s.stop()


def test_odd_bundle_folders_are_refused_or_listed(models, tmp_path):
    ("Bundles the probes broke: a meta.json without config.symbol or a JSON list (re-hashed), a hashes.json entry "
     "outside the folder, a link out of models/, and two folders for one model. /health names each; the rest serve.")
    good = models/"training/BTCUSDT_1h_direction_lstm"
    training = tmp_path/"training"
    shutil.copytree(good, training/"BTCUSDT_1h_direction_lstm")
    shutil.copytree(good, training/"zz_copy_of_direction")
    rehashed_copy(good, training/"no_symbol", lambda m: {**m, "config": {k: v for k, v in m["config"].items() if k != "symbol"}})
    rehashed_copy(good, training/"a_list", lambda m: [m])
    escape = shutil.copytree(good, training/"escape")
    h = json.loads((escape/"hashes.json").read_text()); h["files"]["../outside.keras"] = "0" * 64
    (escape/"hashes.json").write_text(json.dumps(h))
    (training/"linked").symlink_to(models/"training/BTCUSDT_1h_level_up_lstm", target_is_directory=True)
    s = Server(tmp_path)
    try:
        h = httpx.get(s.url + "/health").json()
        assert [b["id"] for b in h["bundles"]] == ["BTCUSDT_1h_direction_lstm"], h
        assert list(h["shadowed"]) == ["BTCUSDT_1h_direction_lstm"] and "zz_copy_of_direction" in h["shadowed"]["BTCUSDT_1h_direction_lstm"]
        failed = h["failed"]
        assert set(failed) == {"no_symbol", "a_list", "escape", "linked"}, failed
        assert "no_symbol/meta.json: missing key 'symbol' in 'config'" in failed["no_symbol"]
        assert "a_list/meta.json: not a JSON object" in failed["a_list"]
        assert "../outside.keras" in failed["escape"] and "outside" in failed["linked"]
        assert post(s, {"symbol": "BTCUSDT", "sequence": [[0.0] * 21] * 24}, token=None).status_code == 200
    finally: s.stop()


def test_gbm_bundle_is_served_like_any_other(tmp_path):
    "A LightGBM bundle on the vol inputs answers /predict (model_type gbm) as its Predictor does, candles and all."
    cfg = ExperimentConfig("BTCUSDT", "1h", "level_up", "gbm", window=16, features="vol", n_boot=10)
    run_experiment(cfg, models_dir=tmp_path, reports_dir=tmp_path/"reports", progress=False, log=lambda s: None)
    s = Server(tmp_path)
    try:
        bars = load_ohlcv("BTCUSDT", "1h", start="2025-06-01")
        arrays = [[int(t.value // 10**6), *map(float, row)] for t, row in zip(bars.index, bars.to_numpy())]
        r = post(s, {"symbol": "BTCUSDT", "label": "level_up", "model_type": "gbm", "candles": arrays}, token=None)
        assert r.status_code == 200, r.text
        local = Predictor.load(path=tmp_path/"training/BTCUSDT_1h_level_up_gbm").predict_candles(bars, 30)
        assert r.json()["probability"] == pytest.approx(local["probability"], abs=1e-6)
        assert r.json()["mc_samples"] == local["mc_samples"] and r.json()["model_type"] == "gbm"
    finally: s.stop()
