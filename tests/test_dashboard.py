"""The Voila dashboard for real: itff-dashboard on a loopback port, driven by Debian's chromium through Playwright."""
import json, os, shutil, socket, subprocess, time
from urllib.parse import urlsplit
import httpx
import psutil
import pandas as pd
import pytest
from conftest import BIN, rehashed_copy, run_cli

CHROMIUM = "/usr/bin/chromium"
USER, PASSWORD = "ana", "s3cret"
PANELS = ("roc", "pr", "reliability", "sweep", "uncertainty", "coverage", "backtest")


def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def start_dashboard(home, log, **env):
    "itff-dashboard on a free loopback port, up when /health answers; returns (process, base url)."
    port = free_port()
    proc = subprocess.Popen([str(BIN/"itff-dashboard"), "--port", str(port)], cwd=home, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "ITFF_HOME": str(home), **env})
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200: return proc, url
        except httpx.HTTPError: pass
        if proc.poll() is not None: break
        time.sleep(0.5)
    proc.kill(); raise AssertionError(f"itff-dashboard did not start: {log.name}")


@pytest.fixture(scope="module")
def dash_home(tiny_home, tmp_path_factory):
    "Tiny bundles (BTC direction and level_up, ETH direction), their reports, and an itff-reports summary."
    home = tmp_path_factory.mktemp("dash")
    shutil.copytree(tiny_home/"models", home/"models"); shutil.copytree(tiny_home/"reports", home/"reports")
    r = run_cli("itff-reports", "--symbols", "BTCUSDT,ETHUSDT", "--timeframes", "1h", "--labels", "direction", "--models", "lstm",
                "--n-boot", "40", "--workers", "2", cwd=home, env={"ITFF_HOME": str(home)})
    assert r.returncode == 0, r.stdout + r.stderr
    served_forecasts(home, tiny_home/"btcusdt_candles.csv")
    malformed_bundles(home/"models/training")
    (home/"reports/tuning/study_a").mkdir(parents=True)                       # an itff-tune study's summary
    (home/"reports/tuning/study_a/tuning.json").write_text(json.dumps(
        {"study": "study_a", "trials": {"finished": 12}, "chosen_trial": 3, "chosen_value": 0.248, "default_value": 0.249,
         "chosen_config": {"symbol": "BTCUSDT", "timeframe": "1h", "label": "direction", "model_type": "gbm", "window": 16},
         "pbo": None, "dsr": None, "words": "Tuning bought nothing here."}))
    return home


def malformed_bundles(training):
    "Two bundles whose meta.json is malformed but whose hashes.json verifies: one without config.symbol, one a JSON list."
    from itff.artifacts import verify_bundle
    good = json.loads((training/"BTCUSDT_1h_direction_lstm/meta.json").read_text())
    for name, meta in [("BROKEN_no_symbol", {**good, "config": {k: v for k, v in good["config"].items() if k != "symbol"}}),
                       ("BROKEN_list", [good])]:
        d = rehashed_copy(training/"BTCUSDT_1h_direction_lstm", training/name, lambda m, meta=meta: meta)
        verify_bundle(d)                     # its hashes hold: only the content is wrong


def served_forecasts(home, candles):
    "Log the BTC direction bundle's last 200 test forecasts as the service would, and resolve them with the real itff-monitor."
    from itff.artifacts import bundle_sha
    from itff.predlog import PredictionLog
    folder = home/"models/training/BTCUSDT_1h_direction_lstm"
    meta, preds = json.loads((folder/"meta.json").read_text()), pd.read_csv(home/"reports/BTCUSDT_1h_direction_lstm/predictions.csv").tail(200)
    with PredictionLog(home/"predictions.db") as log:
        for i, r in enumerate(preds.itertuples()):
            log.append({"logged_at": r.time, "request_id": f"r{i}", "source": "api", "bundle_id": meta["id"], "bundle_sha": bundle_sha(folder),
                        "symbol": "BTCUSDT", "timeframe": "1h", "target": "direction", "model_type": "lstm", "label": json.dumps(meta["label"]),
                        "bar_time": r.time, "probability": r.p_model, "mc_std": r.mc_std, "mutual_info": r.mutual_info,
                        "decision": int(r.p_model >= meta["decision"]["threshold"]), "threshold": meta["decision"]["threshold"]})
    r = run_cli("itff-monitor", "--db", home/"predictions.db", "--source", candles, cwd=home, env={"ITFF_HOME": str(home)})
    assert r.returncode == 0 and (home/"reports/monitor.json").exists(), r.stdout + r.stderr


@pytest.fixture(scope="module")
def server(dash_home, tmp_path_factory):
    log = open(tmp_path_factory.mktemp("logs")/"dashboard.log", "w")
    proc, url = start_dashboard(dash_home, log, ITFF_DASH_USERNAME=USER, ITFF_DASH_PASSWORD=PASSWORD)
    yield url
    proc.terminate(); proc.wait(20); log.close()


def test_basic_auth_and_health(server):
    health = httpx.get(f"{server}/health")
    assert health.status_code == 200, health.text                              # the malformed bundles do not take it down
    body = health.json()
    assert (body["status"], body["bundles"], sorted(body["failed"])) == ("ok", 3, ["BROKEN_list", "BROKEN_no_symbol"]), body
    assert body["failed"]["BROKEN_no_symbol"].endswith("BROKEN_no_symbol/meta.json: missing key 'symbol' in 'config'"), body
    assert "BROKEN_list/meta.json: not a JSON object" in body["failed"]["BROKEN_list"], body
    for auth in (None, (USER, "wrong"), ("bob", PASSWORD)):
        for path in ("/", "/voila/static/voila.js", "/api/kernels/0123"):
            r = httpx.get(server + path, auth=auth)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic"), (path, auth, r.status_code)
    assert httpx.get(server + "/", auth=(USER, PASSWORD), timeout=120).status_code == 200


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def off_loopback(url):
    "Is `url` a request that leaves this machine (anything but loopback http/ws, data: and blob:)?"
    u = urlsplit(url)
    return not (u.scheme in ("data", "blob") or (u.scheme in ("http", "https", "ws", "wss") and u.hostname in LOCAL_HOSTS))


def open_page(browser, url, problems, **ctx):
    "A page that records console errors, page errors, failed requests and any request leaving loopback into `problems`."
    page = browser.new_context(viewport={"width": 1300, "height": 4200}, **ctx).new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text} ({m.location.get('url')})") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("request", lambda r: problems.append(f"request off loopback: {r.url}") if off_loopback(r.url) else None)
    page.on("websocket", lambda w: problems.append(f"websocket off loopback: {w.url}") if off_loopback(w.url) else None)
    page.goto(url, timeout=120_000)
    return page


def kernel_id(page):
    "The id of the Voila kernel behind `page`."
    return page.evaluate("() => JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")


def kernel_gone(url, kid, within, auth=None):
    "Does the server stop knowing kernel `kid` (404 on /api/kernels/<id>) within `within` seconds?"
    end = time.monotonic() + within
    while time.monotonic() < end:
        if httpx.get(f"{url}/api/kernels/{kid}", auth=auth, timeout=10).status_code == 404: return True
        time.sleep(0.5)
    return False


def text(page, cls): return page.inner_text(f".itff-{cls}")


def test_dashboard_in_the_browser(server, browser, tmp_path, dash_home):
    problems = []
    page = open_page(browser, server, problems, http_credentials={"username": USER, "password": PASSWORD})
    page.wait_for_selector(".itff-probability", timeout=120_000)
    for k in PANELS:   # every plot drawn
        assert page.eval_on_selector(f"img.itff-{k}", "e => e.complete && e.naturalWidth > 200"), k
    assert page.locator(".itff-metrics table tbody tr").count() == 6          # model, raw, both climatologies, logistic, GBM
    assert "BTCUSDT_1h_direction_lstm" in text(page, "info") and "paired tests together" in text(page, "verdict")
    assert text(page, "skill").startswith(("yes (p=", "NO (p="))                 # the skill gate is shown
    assert page.locator(".itff-reports table tbody tr").count() == 2          # summary.csv: BTC and ETH direction
    assert "study_a" in text(page, "tuning") and "Tuning bought nothing here." in text(page, "tuning-words")
    refused = text(page, "refused")                                             # the malformed bundles, named with why
    assert "BROKEN_no_symbol" in refused and "missing key 'symbol'" in refused and "BROKEN_list" in refused, refused
    assert page.locator(".itff-symbol select option").all_inner_texts() == ["BTCUSDT", "ETHUSDT"]
    prob = float(text(page, "probability"))
    assert 0 < prob < 1 and text(page, "decision") in ("act", "no signal")
    assert text(page, "ood") in ("in distribution", "out of distribution")   # the gate's verdict on the live forecast
    assert page.locator(".itff-monitor table tbody tr").count() == 5 and "200 (" in text(page, "monitor")   # itff-monitor's live scores
    assert text(page, "alarm").startswith(("No calibration alarm", "Calibration alarm"))
    assert page.eval_on_selector("img.itff-live_reliability", "e => e.complete && e.naturalWidth > 200")
    page.screenshot(path=str(tmp_path/"dashboard_start.png"), full_page=True)

    roc, table = page.get_attribute("img.itff-roc", "src"), text(page, "metrics")
    page.select_option(".itff-label select", "level_up")
    page.wait_for_function("() => document.querySelector('.itff-live').innerText.includes('BTCUSDT_1h_level_up_lstm')", timeout=60_000)
    page.wait_for_function(f"() => document.querySelector('img.itff-roc').src !== {roc!r}", timeout=60_000)
    assert text(page, "metrics") != table                                       # other bundle, other numbers
    page.select_option(".itff-symbol select", "ETHUSDT")                         # ETH has only direction: the label follows
    page.wait_for_function("() => document.querySelector('.itff-live').innerText.includes('ETHUSDT_1h_direction_lstm')", timeout=60_000)
    assert page.input_value(".itff-label select") == "direction"

    preds = pd.read_csv(dash_home/"reports/ETHUSDT_1h_direction_lstm/predictions.csv")
    readout = page.locator(".itff-threshold .widget-readout")

    def set_threshold(value):      # type into the slider's readout, as a user can
        readout.click(); page.keyboard.press("Control+A"); page.keyboard.type(f"{value:.2f}"); page.keyboard.press("Enter")
        page.wait_for_function(f"() => document.querySelector('.itff-chosen').innerText === '{value:.2f}'", timeout=60_000)
        return text(page, "precision"), text(page, "coverage")

    everything = set_threshold(0.05)
    assert everything[1] == "1.000"                                             # every bar signals at 0.05
    some = set_threshold(round(float(preds.p_model.median()), 2))
    assert some != everything and float(some[1]) < 1                           # precision and coverage follow the slider
    assert "At the slider's" in text(page, "live")
    page.screenshot(path=str(tmp_path/"dashboard_after.png"), full_page=True)
    assert not page.locator(".itff-error").count()
    # the Refresh button's icon is drawn with Font Awesome from Voila's own bundle, not from a CDN
    assert page.evaluate("() => [...document.fonts].some(f => f.family.startsWith('Font Awesome') && f.status === 'loaded')")
    assert problems == [], problems
    kid, auth = kernel_id(page), (USER, PASSWORD)
    assert httpx.get(f"{server}/api/kernels/{kid}", auth=auth).json()["connections"] >= 1
    page.close(run_before_unload=True)       # a tab that closes tells Voila, which shuts its kernel down at once
    assert kernel_gone(server, kid, 20, auth), "the closed page's kernel still runs"


def test_empty_state(tmp_path, browser):
    log = open(tmp_path/"dashboard.log", "w")
    proc, url = start_dashboard(tmp_path, log)
    try:
        problems = []
        page = open_page(browser, url, problems)
        page.wait_for_selector(".itff-empty", timeout=120_000)
        assert "No trained models yet" in page.inner_text(".itff-empty") and "make demo" in page.inner_text(".itff-empty")
        page.screenshot(path=str(tmp_path/"dashboard_empty.png"))
        assert problems == [], problems
    finally: proc.terminate(); proc.wait(20); log.close()


def ipykernels(proc):
    "The kernel processes under the dashboard's process."
    out = []
    for p in psutil.Process(proc.pid).children(recursive=True):
        try:
            if "ipykernel" in " ".join(p.cmdline()): out.append(p)
        except psutil.Error: pass    # ended meanwhile
    return out


def test_abandoned_kernels_are_culled(dash_home, browser, tmp_path):
    "A page gone without a goodbye (a crashed tab) leaves a kernel culled after ITFF_DASH_KERNEL_IDLE_S; an open page keeps its own."
    log = open(tmp_path/"dashboard.log", "w")
    proc, url = start_dashboard(dash_home, log, ITFF_DASH_KERNEL_IDLE_S="8")
    try:
        problems = []
        page = open_page(browser, url, problems)
        page.wait_for_selector(".itff-probability", timeout=120_000)
        kid = kernel_id(page)
        assert len(ipykernels(proc)) == 1
        time.sleep(20)                                                          # idle past the timeout, but connected
        assert httpx.get(f"{url}/api/kernels/{kid}").status_code == 200
        page.select_option(".itff-label select", "level_up")                    # and the page still works
        page.wait_for_function("() => document.querySelector('.itff-live').innerText.includes('BTCUSDT_1h_level_up_lstm')", timeout=60_000)
        assert problems == [], problems
        page.close()                                                            # no beforeunload: as when a browser crashes
        assert kernel_gone(url, kid, 60), "the abandoned kernel was not culled"
        for _ in range(40):
            if not ipykernels(proc): break
            time.sleep(0.5)
        assert ipykernels(proc) == []
        assert f"Culling 'idle' kernel 'python3' ({kid})" in (tmp_path/"dashboard.log").read_text()
    finally: proc.terminate(); proc.wait(20); log.close()
