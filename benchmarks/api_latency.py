"""Benchmark: /predict (30 MC samples) of the ITFF service against a naive handler, both served by uvicorn on loopback.

One real bundle (window 48, 21 features; `common.make_bundle`: `run_experiment`, one epoch on synthetic candles) is
served twice in the same run: by `itff.api:app` (2 workers, logging every forecast to a prediction log in the temp
folder, as deployed) and by `benchmarks/naive_api.py` (a handler calling `model.predict` once per MC sample, 2 workers).
`wrk` (Debian package `wrk`) measures p50/p99 latency at 1 client and throughput at 16 clients. Results go to
benchmarks/results/api_latency_{model}.json. Targets on 2 cores: p50 ≤ 3 ms and p99 ≤ 15 ms at 1 client, ≥ 400 req/s
at 16 clients, ≥ 5× the naive handler. --smoke: a tiny bundle, 1 worker, 1 s at 1 and at 4 clients, and threads of
httpx clients where wrk is not installed.
Run: .venv/bin/python benchmarks/api_latency.py [--model lstm] [--seconds 10] [--smoke]
"""
import json, os, re, shutil, socket, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import httpx
import numpy as np
from common import make_bundle, out_path, parser, save_results
from itff.predictor import Predictor

HERE, WINDOW, MC = Path(__file__).parent, 48, 30
SMOKE = dict(window=16, bars=1500, mc_samples=5, units=8)   # a tiny LSTM bundle: seconds to make
LUA = ('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
       'wrk.body = [==[{body}]==]\n'  # level-2 bracket: the JSON holds "]]"
       'shown = 0\nresponse = function(status, headers, body)\n'
       '  if status ~= 200 and shown < 1 then\n'
       '    print("first failure: " .. status .. " " .. body:sub(1, 300)); shown = 1\n'
       '  end\n'
       'end\n')


def service_env(d) -> dict:
    "The service's settings: bundles and prediction log in the temp folder `d`; no token, rate limit or refusals."
    return {"ITFF_HOME": d, "ITFF_MODELS_DIR": d, "ITFF_PREDICTION_DB": f"{d}/predictions.db",
            "ITFF_MONITOR_FILE": f"{d}/monitor.json", "ITFF_API_TOKEN": "", "ITFF_API_RATE_LIMIT": "",
            "ITFF_API_REFUSE_NO_SKILL": "", "ITFF_MODEL_MAX_AGE": "", "ITFF_REFUSE_STALE": ""}


def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def serve(app, env, app_dir=None, workers=2, log_dir=None):
    "Start uvicorn serving `app` (its log in `log_dir`); returns (process, url) once every worker answers."
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
           "--log-level", "warning"] + (["--app-dir", str(app_dir)] if app_dir else [])
    log = Path(log_dir or tempfile.gettempdir())/f"uvicorn-{port}.log"
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    url, t0, ok, probe = f"http://127.0.0.1:{port}", time.time(), 0, "/ready" if "itff" in app else "/docs"
    while time.time() - t0 < 180 and proc.poll() is None:   # all workers up: 20 successes in a row, fresh connections
        try: ok = ok + 1 if httpx.get(url + probe, timeout=2).status_code == 200 else 0
        except httpx.HTTPError: ok = 0
        if ok >= 20: return proc, url
        time.sleep(0.05 if ok else 0.3)
    proc.kill(); raise RuntimeError(f"{app} did not start; its log ({log}) ends:\n{log.read_text()[-3000:]}")


def uvicorn_stack() -> dict:
    "The HTTP parser and event loop `serve`'s uvicorn runs (`--http`/`--loop auto`, or UVICORN_HTTP/UVICORN_LOOP)."
    from uvicorn.loops.auto import auto_loop_factory
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
    http, loop = os.environ.get("UVICORN_HTTP", "auto"), os.environ.get("UVICORN_LOOP", "auto")
    if http == "auto": http = "httptools" if "httptools" in AutoHTTPProtocol.__module__ else "h11"
    if loop == "auto": loop = "uvloop" if "uvloop" in auto_loop_factory().__module__ else "asyncio"
    return {"http": http, "loop": loop}


def wrk(url, script, clients, seconds):
    "p50/p99 ms, req/s and failed requests of `clients` wrk connections for `seconds`, and wrk's report."
    cmd = ["wrk", "-t", str(min(clients, 2)), "-c", str(clients), "-d", f"{seconds}s", "--latency", "-s", str(script),
           url + "/predict"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    def ms(tag):
        v, unit = re.search(rf"^\s+{tag}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return round(float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit], 3)
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(x) for x in re.findall(r"Socket errors: .*?(\d+)", out))
    n, rps = int(re.search(r"(\d+) requests in", out)[1]), float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    return {"clients": clients, "requests": n, "p50_ms": ms("50"), "p99_ms": ms("99"), "req_per_s": rps, "errors": errors}, out


def httpx_clients(url, body, clients, seconds):
    "The same numbers from `clients` threads, each POSTing on its own keep-alive httpx connection (--smoke, no wrk)."
    def one(_):
        times, errors, end = [], 0, time.perf_counter() + seconds
        with httpx.Client(timeout=30, headers={"content-type": "application/json"}) as c:
            while time.perf_counter() < end:
                t0 = time.perf_counter(); r = c.post(url + "/predict", content=body)
                times.append(time.perf_counter() - t0); errors += r.status_code != 200
        return times, errors, r.text[:300]
    with ThreadPoolExecutor(clients) as ex: runs = list(ex.map(one, range(clients)))
    t = np.concatenate([r[0] for r in runs]) * 1e3
    q = lambda x: round(float(np.percentile(t, x)), 3)
    return ({"clients": clients, "requests": len(t), "p50_ms": q(50), "p99_ms": q(99),
             "req_per_s": round(len(t) / seconds, 1), "errors": sum(r[1] for r in runs)}, f"last response: {runs[-1][2]}")


def load(url, body, script, clients, seconds, check=True):
    "Drive /predict with `clients` clients for `seconds` (wrk when installed); raise on any failed request if `check`."
    use_wrk = shutil.which("wrk")
    res, report = wrk(url, script, clients, seconds) if use_wrk else httpx_clients(url, body, clients, seconds)
    if check and (res["errors"] or not res["requests"]):
        raise RuntimeError(f"{res['errors']} failed requests of {res['requests']} against {url}: the numbers would be "
                           f"meaningless\n{report}")
    return res


def measure(app, env, app_dir, body, script, seconds, workers, many):
    "Serve `app`, check one request, warm every worker, then measure at 1 and at `many` clients."
    proc, url = serve(app, env, app_dir, workers, log_dir=Path(script).parent)   # the run's temp folder
    try:
        r = httpx.post(url + "/predict", content=body, headers={"content-type": "application/json"}, timeout=30)
        if r.status_code != 200: raise RuntimeError(f"{app}: /predict answered {r.status_code}: {r.text[:500]}")
        for _ in range(30 if workers > 1 else 0):   # until every worker has loaded and compiled: a run without errors
            if load(url, body, script, many, min(seconds, 2), check=False)["errors"] == 0: break
        return {f"{n}_client{'s' * (n > 1)}": load(url, body, script, n, seconds) for n in (1, many)}
    finally: proc.terminate(); proc.wait(20)


def request(pred:Predictor, model:str) -> str:
    "A /predict body for `pred`'s bundle: a random window of raw features, its default number of MC samples."
    x = np.random.default_rng(0).normal(size=(pred.window, len(pred.features))).round(6)
    return json.dumps({"symbol": "BTCUSDT", "target": "direction", "model_type": model, "mc_samples": pred.mc_samples,
                       "sequence": x.tolist()})


def main(model="lstm", seconds=10, workers=2, many=16, out=None, **bundle_kw):
    "Measure both services on one bundle; `bundle_kw` for `make_bundle` (a smoke run's tiny one)."
    with tempfile.TemporaryDirectory() as d:
        bundle = make_bundle(d, model, **{"window": WINDOW, "mc_samples": MC, **bundle_kw})
        pred = Predictor.load(path=bundle, warmup=False)
        body = request(pred, model)
        script = Path(d)/"post.lua"; script.write_text(LUA.format(body=body))
        res = {name: measure(app, env, app_dir, body, script, seconds, workers, many)
               for name, app, env, app_dir in (("itff", "itff.api:app", service_env(d), None),
                                               ("naive", "naive_api:app", {"ITFF_NAIVE_BUNDLE": str(bundle)}, HERE))}
    itff, naive = res["itff"], res["naive"]
    res["speedup_p50_1_client"] = round(naive["1_client"]["p50_ms"] / itff["1_client"]["p50_ms"], 1)
    res[f"throughput_ratio_{many}_clients"] = round(itff[f"{many}_clients"]["req_per_s"]
                                                    / naive[f"{many}_clients"]["req_per_s"], 1)
    res["setup"] = {"model": model, "mc_samples": pred.mc_samples, "window": pred.window,
                    "features": len(pred.features), "workers": workers, "seconds_per_run": seconds,
                    "cpus": os.cpu_count(), "client": "wrk" if shutil.which("wrk") else "httpx threads",
                    "bundle": "run_experiment, 1 epoch on synthetic 1h candles", "uvicorn": uvicorn_stack(),
                    "targets": {"p50_ms_1_client": 3, "p99_ms_1_client": 15, "req_per_s_16_clients": 400, "speedup": 5}}
    return save_results(res, out or out_path(f"api_latency_{model}"))


if __name__ == "__main__":
    ap = parser(__doc__)
    ap.add_argument("--model", "--model-type", dest="model", default="lstm",
                    help="lstm or transformer (--model-type: the old spelling, deprecated)")
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args()
    if any(x.startswith("--model-type") for x in sys.argv[1:]):
        print("--model-type is deprecated: use --model", file=sys.stderr)
    out = out_path(f"api_latency_{a.model}", a.smoke, a.out)
    if a.smoke: main(a.model, 1, 1, 4, out, **SMOKE)
    elif not shutil.which("wrk"): sys.exit("wrk is needed: apt-get install wrk (only --smoke falls back to httpx)")
    else: main(a.model, a.seconds, out=out)
