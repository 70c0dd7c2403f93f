"""Papermill reports: the template run for real, a sweep with good, missing and failing bundles, and idempotent reruns."""
import json, shutil
import nbformat
import pandas as pd
import pytest
from conftest import run_cli
from itff.rescore import evaluate_bundle
from itff.reports import template_path

GOOD = "BTCUSDT_1h_direction_lstm"


@pytest.fixture
def home(tiny_home, tmp_path):
    "A private copy of the tiny bundles (the sweep tests damage and rerun them)."
    shutil.copytree(tiny_home/"models", tmp_path/"models")
    return tmp_path


def test_template_run_equals_evaluate_bundle(home, tmp_path):
    import papermill as pm
    out = tmp_path/"out"
    pm.execute_notebook(str(template_path()), str(tmp_path/"run.ipynb"), kernel_name="python3", progress_bar=False,
                        parameters={"symbol": "BTCUSDT", "timeframe": "1h", "label": "direction", "model_type": "lstm",
                                    "output": str(out), "models_dir": str(home/"models"), "n_boot": 60})
    got = json.loads((out/GOOD/"metrics.json").read_text())
    want = evaluate_bundle(home/"models/training"/GOOD, output=tmp_path/"direct", n_boot=60, log=lambda s: None)
    assert got["test"] == want["test"] and got["bundle_sha256"] == want["bundle_sha256"]
    for name in ("model", "model_raw", "climatology", "logistic", "gbm"):
        for k in ("roc_auc", "brier", "bss", "log_loss", "ece"):
            assert got["scores"][name][k] == pytest.approx(want["scores"][name][k], abs=1e-12), (name, k)
    assert got["comparison"]["model"]["p_vs_gbm"] == want["comparison"]["model"]["p_vs_gbm"]
    executed = nbformat.read(tmp_path/"run.ipynb", as_version=4)
    text = "\n".join(str(o.get("data", {}).get("text/markdown", "")) + str(o.get("text", ""))
                     for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "paired tests together" in text and ("beat" in text or "worse than" in text)   # the plain-language verdict was shown
    tables = "\n".join(str(o.get("data", {}).get("text/html", "")) for c in executed.cells if c.cell_type == "code"
                       for o in c.outputs)
    assert "MCB if calibrated (95%)" in tables and "DSC" in tables                         # the Brier decomposition was shown
    pngs = sum("image/png" in o.get("data", {}) for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert pngs == 8   # ROC, PR, reliability, sweep, coverage, uncertainty, backtest, importance


def flip_byte(path):
    data = bytearray(path.read_bytes()); data[len(data) // 2] ^= 0xFF; path.write_bytes(bytes(data))


def reports(home, *args):
    return run_cli("itff-reports", "--symbols", "BTCUSDT", "--timeframes", "1h", "--labels", "direction,level_up,level_down",
                   "--models", "lstm", "--n-boot", "40", *args, cwd=home, env={"ITFF_HOME": str(home)})


def test_sweep_good_missing_and_failing(home):
    flip_byte(home/"models/training/BTCUSDT_1h_level_up_lstm/model.keras")      # verified at load: this report must fail
    r = reports(home, "--jobs", "2")
    assert r.returncode == 1, r.stdout + r.stderr                            # exit status = number of failed reports
    assert "BTCUSDT_1h_level_down_lstm: no bundle at" in r.stdout
    assert f"✓ {GOOD}" in r.stdout and "✗ BTCUSDT_1h_level_up_lstm failed: BundleError" in r.stdout
    summary = pd.read_csv(home/"reports/summary.csv").set_index("report")
    assert list(summary.index) == [GOOD, "BTCUSDT_1h_level_up_lstm"]
    assert summary.loc[GOOD, "status"] == "ok" and summary.loc["BTCUSDT_1h_level_up_lstm", "status"] == "failed"
    assert "fails its sha256 check" in summary.loc["BTCUSDT_1h_level_up_lstm", "error"]
    metrics = json.loads((home/"reports"/GOOD/"metrics.json").read_text())
    assert summary.loc[GOOD, "auc"] == pytest.approx(metrics["comparison"]["model"]["roc_auc"], abs=1e-4)
    assert summary.loc[GOOD, "bundle_sha256"] == metrics["bundle_sha256"]
    index = (home/"reports/index.html").read_text()
    assert f'<a href="{GOOD}.html">' in index and '<span class="failed">failed</span>' in index
    good_html = (home/f"reports/{GOOD}.html").read_text()
    assert "Verdict" in good_html and "data:image/png;base64" in good_html and "evaluate_report(" not in good_html  # code hidden
    bad_nb = nbformat.read(home/"reports/BTCUSDT_1h_level_up_lstm.ipynb", as_version=4)
    assert any("BundleError" in str(o) for c in bad_nb.cells if c.cell_type == "code" for o in c.outputs)   # the error cell is kept
    assert "fails its sha256 check" in (home/"reports/BTCUSDT_1h_level_up_lstm.html").read_text()
    assert not list((home/"reports").glob(".*.running.ipynb"))


def test_rerun_skips_unchanged_reports(home):
    args = ("--labels", "direction")
    first = run_cli("itff-reports", "--symbols", "BTCUSDT", "--timeframes", "1h", "--models", "lstm", "--n-boot", "40", *args,
                    cwd=home, env={"ITFF_HOME": str(home)})
    assert first.returncode == 0, first.stdout + first.stderr
    nb = home/f"reports/{GOOD}.ipynb"; stamp = nb.stat().st_mtime_ns
    run = lambda *more: run_cli("itff-reports", "--symbols", "BTCUSDT", "--timeframes", "1h", "--models", "lstm", "--n-boot", "40",
                                *args, *more, cwd=home, env={"ITFF_HOME": str(home)})
    same = run()
    assert same.returncode == 0 and f"= {GOOD} unchanged" in same.stdout and nb.stat().st_mtime_ns == stamp
    assert pd.read_csv(home/"reports/summary.csv").status.tolist() == ["ok"]       # the index keeps the last real run
    other = run("--mc-samples", "4")                                                # a changed parameter reruns it
    assert other.returncode == 0 and f"✓ {GOOD}" in other.stdout and nb.stat().st_mtime_ns != stamp
    stamp = nb.stat().st_mtime_ns
    forced = run("--mc-samples", "4", "--force")
    assert f"✓ {GOOD}" in forced.stdout and nb.stat().st_mtime_ns != stamp
    flip_byte(home/"models/training"/GOOD/"metrics.json")                               # a changed bundle reruns (and fails)
    changed = run("--mc-samples", "4")
    assert changed.returncode == 1 and f"✗ {GOOD} failed" in changed.stdout


def test_bad_options_and_lock(home):
    from itff.pipeline import pipeline_lock
    for args, message in [(("--models", "gru"), "unknown model type(s) ['gru']"), (("--timeframes", "2w"), "unknown timeframe '2w'")]:
        r = run_cli("itff-reports", *args, cwd=home, env={"ITFF_HOME": str(home)})
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    with pipeline_lock(home/"reports", "itff-reports"):
        r = reports(home)
    assert r.returncode == 2 and "another itff-reports run" in r.stderr


def test_template_is_clean_and_keeps_its_parameters_tag(tmp_path):
    copy = tmp_path/"t.ipynb"; shutil.copy(template_path(), copy)
    r = run_cli("nbdev-clean", "--fname", copy, cwd=template_path().parents[2])
    assert r.returncode == 0, r.stderr
    assert copy.read_text() == template_path().read_text()          # committed clean
    nb = nbformat.read(copy, as_version=4)
    assert [c.metadata.get("tags") for c in nb.cells if c.metadata.get("tags")] == [["parameters"]]
    dirty = nbformat.read(copy, as_version=4)
    dirty.cells[1].metadata["collapsed"] = True; dirty.cells[1].execution_count = 3
    nbformat.write(dirty, copy)
    run_cli("nbdev-clean", "--fname", copy, cwd=template_path().parents[2])
    again = nbformat.read(copy, as_version=4)
    assert again.cells[1].metadata == {"tags": ["parameters"]} and again.cells[1].execution_count is None
