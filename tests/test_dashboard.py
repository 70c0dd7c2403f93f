"""The Voila dashboard for real: itff-dashboard on a loopback port, driven by Debian's chromium through Playwright."""
import json, os, re, shutil, socket, subprocess, time
import httpx
import pandas as pd
import pytest
from conftest import BIN, run_cli

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
    return home


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
    assert health.status_code == 200 and health.json() == {"status": "ok", "bundles": 3}
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


def open_page(browser, url, problems, **ctx):
    "A page that records console errors and any request leaving loopback (the Voila template links Font Awesome from a CDN: stubbed)."
    page = browser.new_context(viewport={"width": 1300, "height": 4200}, **ctx).new_page()
    page.route(re.compile(r"https://cdn\.jsdelivr\.net/npm/@fortawesome/.*\.css"), lambda r: r.fulfill(status=200, content_type="text/css", body=""))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:", "blob:", "https://cdn.jsdelivr.net/npm/@fortawesome/"))
            else problems.append(f"request off loopback: {r.url}"))
    page.goto(url, timeout=120_000)
    return page


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
    assert problems == [], problems


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
