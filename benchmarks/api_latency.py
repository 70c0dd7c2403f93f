"""Benchmark: /predict (30 MC samples) of the ITFF service against a naive handler, both served by uvicorn on loopback.

One bundle (real size: window 48, 21 features) is served twice in the same run: by `itff.api:app` (2 workers) and by
`benchmarks/naive_api.py` (a handler calling `model.predict` once per MC sample, 2 workers). `wrk` (Debian package
`wrk`) measures p50/p99 latency at 1 client and throughput at 16 clients. Results go to
benchmarks/results/api_latency_{model_type}.json. Targets on 2 cores: p50 ≤ 3 ms and p99 ≤ 15 ms at 1 client, ≥ 400 req/s at
16 clients, ≥ 5× the naive handler.
Run: .venv/bin/python benchmarks/api_latency.py [--model-type lstm] [--seconds 10]
"""
import argparse, json, os, re, shutil, socket, subprocess, sys, tempfile, time
from pathlib import Path
import httpx
import numpy as np
from common import RESULTS, save_results
from itff.artifacts import write_bundle
from itff.calibrate import Calibrator
from itff.datasets import Scaler
from itff.models import build_model

HERE, WINDOW, N_FEATURES = Path(__file__).parent, 48, 21
LUA = ('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[{body}]==]\n'  # level-2 bracket: the JSON holds "]]"
       'shown = 0\nresponse = function(status, headers, body)\n'
       '  if status ~= 200 and shown < 1 then print("first failure: " .. status .. " " .. body:sub(1, 300)); shown = 1 end\nend\n')


def make_bundle(folder, model_type):
    meta = {"id": f"BTCUSDT_1h_direction_{model_type}", "symbol": "BTCUSDT", "timeframe": "1h", "model_type": model_type,
            "label": {"name": "direction", "definition": "benchmark"}, "window": WINDOW, "horizon": 4, "threshold": 0.5,
            "train": {"mc_samples": 30, "seed": 0}}
    scaler = Scaler([f"f{i}" for i in range(N_FEATURES)], np.zeros(N_FEATURES), np.ones(N_FEATURES), 1)
    return write_bundle(Path(folder)/"training"/meta["id"], [build_model(model_type, WINDOW, N_FEATURES)], scaler,
                        Calibrator("temperature", {"T": 1.2}), meta, {})


def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def serve(app, env, app_dir=None, workers=2):
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    if app_dir: cmd += ["--app-dir", str(app_dir)]
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=open(Path(tempfile.gettempdir())/f"itff-bench-{port}.log", "w"))
    url, t0, ok = f"http://127.0.0.1:{port}", time.time(), 0
    while time.time() - t0 < 180:   # every worker must be ready: 20 successes in a row on fresh connections
        try: ok = ok + 1 if httpx.get(url + ("/ready" if "itff" in app else "/docs"), timeout=2).status_code == 200 else 0
        except httpx.HTTPError: ok = 0
        if ok >= 20: return proc, url
        time.sleep(0.05 if ok else 0.3)
    proc.kill(); raise RuntimeError(f"{app} did not start")


def wrk(url, script, clients, seconds, check=True):
    "Run wrk; returns p50/p99 ms, req/s and errors (raising on any error when `check`)."
    out = subprocess.run(["wrk", "-t", str(min(clients, 2)), "-c", str(clients), "-d", f"{seconds}s", "--latency", "-s", script, url + "/predict"],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    def ms(tag):
        v, unit = re.search(rf"^\s+{tag}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return round(float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit], 3)
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out)) + sum(int(x) for x in re.findall(r"Socket errors: .*?(\d+)", out))
    if errors and check: raise RuntimeError(f"{errors} failed requests against {url}: the numbers would be meaningless\n{out}")
    return {"clients": clients, "p50_ms": ms("50"), "p99_ms": ms("99"), "req_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), "errors": errors}


def main(model_type="lstm", seconds=10, out=None):
    out = out or RESULTS/f"api_latency_{model_type}.json"
    if not shutil.which("wrk"): sys.exit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as d:
        bundle = make_bundle(d, model_type)
        body = json.dumps({"symbol": "BTCUSDT", "target": "direction", "model_type": model_type, "mc_samples": 30,
                           "sequence": np.random.default_rng(0).normal(size=(WINDOW, N_FEATURES)).round(6).tolist()})
        script = Path(d)/"post.lua"; script.write_text(LUA.format(body=body))
        res = {}
        for name, app, env, app_dir in (("itff", "itff.api:app", {"ITFF_MODELS_DIR": d, "ITFF_API_TOKEN": "", "ITFF_API_RATE_LIMIT": ""}, None),
                                        ("naive", "naive_api:app", {"ITFF_NAIVE_BUNDLE": str(bundle)}, HERE)):
            proc, url = serve(app, env, app_dir)
            try:
                assert httpx.post(url + "/predict", content=body, headers={"content-type": "application/json"}, timeout=30).status_code == 200
                for _ in range(30):   # until every worker has loaded and compiled: a whole 16-client run without errors
                    if wrk(url, script, 16, 2, check=False)["errors"] == 0: break
                res[name] = {"1_client": wrk(url, script, 1, seconds), "16_clients": wrk(url, script, 16, seconds)}
            finally: proc.terminate(); proc.wait(20)
    res["speedup_p50_1_client"] = round(res["naive"]["1_client"]["p50_ms"] / res["itff"]["1_client"]["p50_ms"], 1)
    res["throughput_ratio_16_clients"] = round(res["itff"]["16_clients"]["req_per_s"] / res["naive"]["16_clients"]["req_per_s"], 1)
    res["setup"] = {"model_type": model_type, "mc_samples": 30, "window": WINDOW, "features": N_FEATURES, "workers": 2,
                    "seconds_per_run": seconds, "cpus": os.cpu_count(), "client": "wrk",
                    "targets": {"p50_ms_1_client": 3, "p99_ms_1_client": 15, "req_per_s_16_clients": 400, "speedup": 5}}
    return save_results(res, out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-type", default="lstm")
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args()
    main(a.model_type, a.seconds)
