"""Benchmark: the service with micro-batching against the same service without it, and /health under heavy requests.

One real bundle (window 48, 21 features, LSTM; `common.make_bundle`) is served by `itff.api:app` twice in the same
run, 2 uvicorn workers each, logging every forecast as deployed: batched (ITFF_API_BATCH_MAX=16, no added wait) and
unbatched (ITFF_API_BATCH_MAX=1: every request its own MC pass, still off the event loop). `wrk` measures p50/p99 at
1 client and throughput at 16 clients. Then, on the batched service, 4 clients send 10,000-candle requests at
mc_samples=200 while a probe times `/health` every 20 ms. Targets on 2 cores (issue 22): ≥ 2,500 req/s with p99 ≤ 30
ms at 16 clients; 1-client p50 within 10% of the unbatched service's; `/health` p99 ≤ 50 ms under the heavy requests.
Results go to benchmarks/results/api_batching.json. --smoke: a tiny bundle, 1 worker, 1 s runs, 500 candles.
Run: .venv/bin/python benchmarks/api_batching.py [--seconds 10] [--smoke]
"""
import json, os, shutil, sys, tempfile, threading, time
from pathlib import Path
import httpx
import numpy as np
from common import make_bundle, out_path, parser, save_results
from api_latency import LUA, SMOKE, load, request, serve, service_env, uvicorn_stack
from itff.predictor import Predictor

WINDOW, MC = 48, 30


def throughput(url, body, script, seconds, many=16) -> dict:
    "p50/p99 and req/s at 1 client and at `many` clients (after a warm-up run that reaches every worker)."
    load(url, body, script, many, min(seconds, 2), check=False)
    return {f"{n}_client{'s' * (n > 1)}": load(url, body, script, n, seconds) for n in (1, many)}


def candles_body(bars:int, mc_samples:int) -> str:
    "A /predict body of `bars` consecutive synthetic 1h candles as ccxt arrays."
    from itff.train import synthetic_ohlcv
    c = synthetic_ohlcv(0.3, n=bars)
    rows = [[int(t.value // 10**6), *map(float, r)] for t, r in zip(c.index, c[["open", "high", "low", "close", "volume"]]
                                                                    .to_numpy())]
    return json.dumps({"symbol": "BTCUSDT", "target": "direction", "mc_samples": mc_samples, "candles": rows})


def health_under_load(url, heavy:str, clients:int, seconds:float) -> dict:
    "/health latency (p50/p99/max ms) probed every 20 ms while `clients` threads POST the `heavy` body back to back."
    stop, done, codes = threading.Event(), [], []
    def heavy_client():
        with httpx.Client(timeout=120, headers={"content-type": "application/json"}) as c:
            while not stop.is_set(): codes.append(c.post(url + "/predict", content=heavy).status_code); done.append(1)
    threads = [threading.Thread(target=heavy_client) for _ in range(clients)]
    for t in threads: t.start()
    time.sleep(float(os.environ.get("HEAVY_WARM", "1")))   # the heavy requests are under way
    times, end = [], time.perf_counter() + seconds
    with httpx.Client(timeout=30) as probe:
        while time.perf_counter() < end:
            t0 = time.perf_counter(); assert probe.get(url + "/health").status_code == 200
            times.append(time.perf_counter() - t0); time.sleep(0.02)
    stop.set()
    for t in threads: t.join(120)
    t = np.asarray(times) * 1e3
    return {"heavy_clients": clients, "probes": len(t), "p50_ms": round(float(np.percentile(t, 50)), 2),
            "p99_ms": round(float(np.percentile(t, 99)), 2), "max_ms": round(float(t.max()), 2),
            "heavy_requests_done": len(done), "heavy_status_codes": sorted(set(codes))}


def main(seconds=10, workers=2, heavy_bars=10_000, heavy_mc=200, out=None, **bundle_kw):
    with tempfile.TemporaryDirectory() as d:
        bundle = make_bundle(d, "lstm", **{"window": WINDOW, "mc_samples": MC, **bundle_kw})
        pred = Predictor.load(path=bundle, warmup=False)
        body = request(pred, "lstm")
        script = Path(d)/"post.lua"; script.write_text(LUA.format(body=body))
        res = {}
        for name, batch_max in (("batched", "16"), ("unbatched", "1")):
            env = {**service_env(d), "ITFF_API_BATCH_MAX": batch_max, "ITFF_API_MAX_BODY": "5000000"}
            proc, url = serve("itff.api:app", env, None, workers, log_dir=d)
            try:
                res[name] = throughput(url, body, script, seconds)
                if name == "batched":
                    res["health_under_heavy_requests"] = health_under_load(url, candles_body(heavy_bars, heavy_mc), 4,
                                                                           max(seconds, 2))
            finally: proc.terminate(); proc.wait(20)
    b, u, h = res["batched"], res["unbatched"], res["health_under_heavy_requests"]
    res["throughput_ratio_16_clients"] = round(b["16_clients"]["req_per_s"] / u["16_clients"]["req_per_s"], 2)
    res["p50_ratio_1_client"] = round(b["1_client"]["p50_ms"] / u["1_client"]["p50_ms"], 3)
    res["targets_met"] = {"req_per_s_16_clients_ge_2500": b["16_clients"]["req_per_s"] >= 2500,
                          "p99_ms_16_clients_le_30": b["16_clients"]["p99_ms"] <= 30,
                          "p50_1_client_within_10pct_of_unbatched": res["p50_ratio_1_client"] <= 1.10,
                          "health_p99_ms_le_50": h["p99_ms"] <= 50}
    res["setup"] = {"model": "lstm", "mc_samples": pred.mc_samples, "window": pred.window,
                    "features": len(pred.features), "workers": workers, "seconds_per_run": seconds,
                    "heavy_request": f"{heavy_bars} candles, mc_samples={heavy_mc}", "cpus": os.cpu_count(),
                    "client": "wrk" if shutil.which("wrk") else "httpx threads", "uvicorn": uvicorn_stack()}
    return save_results(res, out)


if __name__ == "__main__":
    ap = parser(__doc__)
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args()
    out = out_path("api_batching", a.smoke, a.out)
    if a.smoke: main(1, 1, 500, 20, out, **SMOKE)
    elif not shutil.which("wrk"): sys.exit("wrk is needed: apt-get install wrk (only --smoke falls back to httpx)")
    else: main(a.seconds, out=out)
