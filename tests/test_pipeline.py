"""The main job through its CLIs: itff-pipeline → verified bundles → Predictor → itff-evaluate --bundle, plus failures."""
import json, shutil
import numpy as np
import pytest
from conftest import run_cli, snapshot
from itff.artifacts import BundleError, load_bundle
from itff.core import DataError
from itff.models import mc_samples
from itff.pipeline import pipeline_lock
from itff.predictor import Predictor
from itff.train import synthetic_ohlcv

ID = "BTCUSDT_1h_direction_lstm"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    "One small pipeline run on a synthetic candle file (no label option: both labels by default; LSTM), shared by the tests below."
    home = tmp_path_factory.mktemp("home")
    candles = home/"candles.csv"
    synthetic_ohlcv(0.3, n=3000).reset_index().to_csv(candles, index=False)
    r = run_cli("itff-pipeline", "--source", candles, "--models", "lstm",
                "--epochs", "2", "--window", "16", "--mc-samples", "8", "--threshold", "0.45", cwd=home, env={"ITFF_HOME": str(home)})
    assert r.returncode == 0, r.stdout + r.stderr
    return home, candles, r.stdout


def test_pipeline_stages_and_summary(trained):
    home, _, out = trained
    for stage in ("✓ data", "✓ features", "✓ dataset direction", "✓ dataset level_up", "✓ direction lstm: train",
                  "✓ direction lstm: calibrate", "✓ direction lstm: evaluate", "✓ level_up lstm: bundle"):
        assert stage in out, stage
    assert "best_baseline" in out and "climatology" in out
    for lab in ("direction", "level_up"):
        b = load_bundle(home/f"models/training/BTCUSDT_1h_{lab}_lstm")     # every hash verifies
        assert b.config["source"].endswith("candles.csv") and b.meta["window"] == 16 and b.config["epochs"] == 2
        assert (home/f"reports/BTCUSDT_1h_{lab}_lstm/reliability.png").exists()


def test_predictor_matches_mc_samples_and_calibration(trained):
    home, _, _ = trained
    pred = Predictor.load("BTCUSDT", "1h", "direction", "lstm", models_dir=home/"models")
    x = np.random.default_rng(1).normal(size=(16, len(pred.features)))
    r = pred.predict_window(x)
    ref = mc_samples(pred.bundle.models[0], pred.bundle.scaler.transform(x)[None], 8, seed=pred.seed, chunk=1)[:, 0]
    assert r["mc_mean"] == pytest.approx(float(ref.mean()), abs=1e-7)
    assert r["probability"] == pytest.approx(float(pred.bundle.calibrator(np.array([ref.mean()]))[0]), abs=1e-7)
    assert r["threshold"] == 0.45 and r["abstained_ood"] == (r["in_distribution"] is False)      # random raw features: likely out of distribution
    assert r["decision"] == (r["probability"] >= 0.45 and not r["uncertain"] and not r["abstained_ood"])
    assert r["model"]["sha256"] == pred.bundle.sha and r["model"]["id"] == ID
    with pytest.raises(DataError, match=r"expected shape \(16, 21\)"): pred.predict_window(x[:, :20])


def test_evaluate_bundle_reproduces_stored_metrics(trained):
    home, candles, _ = trained
    stored = json.loads((home/f"models/training/{ID}/metrics.json").read_text())
    r = run_cli("itff-evaluate", "--bundle", home/f"models/training/{ID}", "--data", candles, "--output", home/"eval",
                cwd=home, env={"ITFF_HOME": str(home)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "--data is deprecated" in r.stderr and "use --source" in r.stderr      # the old spelling works, with a one-line note
    again = json.loads(next((home/"eval").glob(f"{ID}_from_*/metrics.json")).read_text())
    assert again["test"] == stored["test"]
    for name in ("model", "model_raw", "climatology", "logistic", "gbm"):
        for k in ("roc_auc", "brier", "bss", "log_loss", "ece"):
            assert again["scores"][name][k] == pytest.approx(stored["scores"][name][k], abs=1e-9), (name, k)
    later = run_cli("itff-evaluate", "--bundle", home/f"models/training/{ID}", "--source", candles, "--start", stored["test"]["last"][:10],
                    "--output", home/"eval2", cwd=home)
    assert later.returncode == 0, later.stderr
    assert json.loads(next((home/"eval2").glob("*/metrics.json")).read_text())["test"]["n"] < stored["test"]["n"]
    inside = run_cli("itff-evaluate", "--bundle", home/f"models/training/{ID}", "--source", candles, "--start", "2022-01-10",
                     "--output", home/"eval3", cwd=home)
    assert inside.returncode == 2 and "in-sample" in inside.stderr and "--allow-in-sample" in inside.stderr and not (home/"eval3").exists()
    allowed = run_cli("itff-evaluate", "--bundle", home/f"models/training/{ID}", "--source", candles, "--start", "2022-01-10",
                      "--allow-in-sample", "--output", home/"eval3", cwd=home)
    assert allowed.returncode == 0 and "warm-up: the first scored window needs" in allowed.stdout


def test_pipeline_data_only_and_old_spellings(tmp_path):
    "--data-only runs the data stages and trains nothing; the original README's flags still parse, each with a note."
    candles = tmp_path/"candles.csv"
    synthetic_ohlcv(0.3, n=600).reset_index().to_csv(candles, index=False)
    r = run_cli("itff-pipeline", "--source", candles, "--data-only", "--train-level", "--model-type", "transformer",
                cwd=tmp_path, env={"ITFF_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "data stages done (--data-only: no model trained)" in r.stdout and not (tmp_path/"models/training").exists()
    assert "--model-type is deprecated" in r.stderr and "use --models" in r.stderr and "use --labels" in r.stderr


def flip_byte(path):
    "Change one byte in the middle of `path`."
    data = bytearray(path.read_bytes()); data[len(data) // 2] ^= 0xFF; path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, message", [
    (lambda b: flip_byte(b/"model.keras"), "model.keras fails its sha256 check"),
    (lambda b: b.joinpath("calibrator.json").unlink(), "file calibrator.json is missing"),
    (lambda b: b.joinpath("scaler.json").write_text(b.joinpath("scaler.json").read_text().replace("0", "1", 1)), "scaler.json fails its sha256 check")])
def test_corrupt_bundle_is_refused(trained, tmp_path, damage, message):
    home, _, _ = trained
    copy = tmp_path/ID; shutil.copytree(home/f"models/training/{ID}", copy)
    damage(copy)
    with pytest.raises(BundleError, match=message): Predictor.load(path=copy)
    r = run_cli("itff-evaluate", "--bundle", copy, "--data", "bundled", "--output", tmp_path/"out")
    assert r.returncode == 2 and message in r.stderr and not (tmp_path/"out").exists()


def test_pipeline_lock_and_failures(trained, tmp_path):
    home, candles, _ = trained
    with pipeline_lock(home/"models"):
        r = run_cli("itff-pipeline", "--source", candles, "--train-direction", cwd=home, env={"ITFF_HOME": str(home)})
    assert r.returncode == 2 and "holds" in r.stderr and "wait for it to finish" in r.stderr
    before = snapshot(tmp_path)
    for args, message in [(["--source", tmp_path/"missing.csv", "--train-direction"], "missing.csv: no such file"),
                          (["--model-type", "lstm,gru", "--train-level"], "unknown model type(s) ['gru']"),
                          (["--labels", "moon"], "unknown label 'moon'")]:
        r = run_cli("itff-pipeline", *args, cwd=tmp_path, env={"ITFF_HOME": str(tmp_path)})
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr[-400:])
        assert "Traceback" not in r.stderr
    assert {k for k in snapshot(tmp_path) if ".itff-pipeline.lock" not in str(k)} == set(before)


def test_decisions_and_skill_gate_chosen_on_validation(tiny_home):
    "Without --threshold, the bundle's threshold, uncertainty cut-off and skill verdict come from the calibration part and drive the Predictor."
    b = load_bundle(tiny_home/"models/training/BTCUSDT_1h_direction_lstm")
    d, v, skill = b.meta["decision"], b.meta["validation"], b.meta["skill"]
    assert d["rule"].startswith("best mean net return") and b.decision["threshold"] == d["threshold"]
    assert b.decision["max_uncertainty"] == d["max_uncertainty"]
    assert v["early_stopping"]["last"] < v["calibration"]["first"] and v["gap_windows"] == b.meta["horizon"]
    assert skill["p_value"] >= 1 / 301 and skill["min_bss"] == 0.01                # the verdict follows from what is recorded
    lower = skill["brier_minus_climatology"] < 0 and (skill["p_value"] < 0.05 or skill["blocks_better"] == len(skill["blocks"]))
    assert skill["has_skill"] == (lower and skill["bss"] >= 0.01 and 2 * skill["blocks_better"] >= len(skill["blocks"])
                                  and not skill["blocks_worse"])
    assert len(d["sweep"]["threshold"]) == 19                                       # the validation sweep it chose from is kept
    pred = Predictor(b)
    assert pred.threshold == d["threshold"] and pred.max_uncertainty == d["max_uncertainty"]
    assert pred.skill == ("ok" if skill["has_skill"] else "no_skill")
    out = pred.predict_window(np.zeros((16, len(pred.features))))
    assert out["skill"] == pred.skill and out["decision"] == (out["probability"] >= pred.threshold and not out["uncertain"])
