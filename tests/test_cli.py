"""The console scripts as a user runs them: --help, a full chain of stages, and bad input that must change nothing."""
import json
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from conftest import rehashed_copy, run_cli, snapshot

CLIS = {"itff-fetch-data": ["--symbol", "--timeframe", "--source", "--days", "--exchange"],
        "itff-fetch-sentiment": ["--symbol", "--output", "--file"],
        "itff-engineer-features": ["--symbol", "--sentiment-file"],
        "itff-prepare-sequences": ["--symbol", "--features", "--save-metadata", "--scaler"],
        "itff-train": ["--symbol", "--symbols", "--pooled", "--context", "--label", "--model", "--features", "--class-weight", "--threshold", "--mc-samples", "--epochs", "--ensemble"],
        "itff-evaluate": ["--symbol", "--label", "--model", "--mc-samples", "--output"],
        "itff-walkforward": ["--symbol", "--label", "--model", "--months", "--folds", "--val-start", "--test-start", "--output"],
        "itff-judge": ["--runs", "--baseline", "--references", "--output"],
        "itff-demo": ["--symbol"]}


@pytest.mark.parametrize("name", CLIS)
def test_help(name):
    r = run_cli(name, "--help")
    assert r.returncode == 0, r.stderr
    for flag in CLIS[name]: assert flag in r.stdout, f"{name} --help does not document {flag}"


def test_stages_chain(home):
    "fetch → sentiment → features → sequences, each reading what the previous one wrote."
    r = run_cli("itff-fetch-data", "--symbol", "BTCUSDT", "--timeframe", "1h", "--source", "bundled", cwd=home)
    assert r.returncode == 0, r.stderr
    assert "45,242 bars" in r.stdout and "22 missing bars in 10 gaps" in r.stdout
    candles = home/"data/candles/BTCUSDT_1h_bundled.parquet"
    assert len(pd.read_parquet(candles)) == 45_242

    r = run_cli("itff-fetch-sentiment", "--symbol", "BTCUSDT", "--output", home/"data/sentiment", cwd=home)
    assert r.returncode == 0, r.stderr
    sent = home/"data/sentiment/BTCUSDT_1h_sentiment.parquet"
    assert pd.read_parquet(sent).sent_count.sum() > 7000

    r = run_cli("itff-engineer-features", candles, "--symbol", "BTCUSDT", "--sentiment-file", sent, cwd=home)
    assert r.returncode == 0, r.stderr
    feats = pd.read_parquet(home/"data/features/BTCUSDT_1h_features.parquet")
    assert feats.shape == (45_242, 27) and "sent_ewm" in feats

    r = run_cli("itff-prepare-sequences", "--symbol", "BTCUSDT", "--features", home/"data/features/BTCUSDT_1h_features.parquet",
                "--ohlcv", candles, "--label", "level_up", "--window", "24", "--save-metadata",
                "--scaler", home/"models/scalers/btcusdt_feature_scaler.json", cwd=home)
    assert r.returncode == 0, r.stderr
    out = home/"data/datasets/BTCUSDT_1h_level_up"
    meta = json.loads((out/"meta.json").read_text())
    assert meta["n_features"] == 27 and meta["window"] == 24 and meta["embargo_bars"] == 28
    scaler = json.loads((home/"models/scalers/btcusdt_feature_scaler.json").read_text())
    assert scaler["features"] == list(feats.columns)
    with np.load(out/"test.npz", allow_pickle=False) as z: assert z["X"].shape[1:] == (24, 27)


GOOD = ("timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,100,102,99,101,5\n"
        "2024-01-01T01:00:00Z,101,104,100,103,6\n2024-01-01T02:00:00Z,103,105,101,104,7\n")

def _edit(line, col, value):
    "GOOD with data line `line` (1-based) having column `col` set to `value`."
    rows = [r.split(",") for r in GOOD.strip().split("\n")]
    rows[line][rows[0].index(col)] = value
    return "\n".join(",".join(r) for r in rows) + "\n"

BAD = {"missing column": (GOOD.replace(",volume", "").replace(",5\n", "\n").replace(",6\n", "\n").replace(",7\n", "\n"), "missing column(s) ['volume']"),
       "unparsable timestamp": (_edit(2, "timestamp", "2024-13-45"), "row 2, column 'timestamp': cannot parse"),
       "unsorted": (GOOD.split("\n")[0] + "\n" + "\n".join([GOOD.split("\n")[2], GOOD.split("\n")[1], GOOD.split("\n")[3]]) + "\n", "not sorted"),
       "duplicate": (GOOD + GOOD.split("\n")[3] + "\n", "row 4 (2024-01-01 02:00:00+00:00), column 'timestamp': duplicate"),
       "NaN": (_edit(2, "close", "nan"), "row 2 (2024-01-01 01:00:00+00:00), column 'close': missing or not a number"),
       "non-positive price": (_edit(1, "open", "-3"), "row 1 (2024-01-01 00:00:00+00:00), column 'open': non-positive price"),
       "high below open/close": (_edit(3, "high", "103.5"), "row 3 (2024-01-01 02:00:00+00:00), column 'high': high 103.5 < max(open, close) 104.0"),
       "low above open/close": (_edit(1, "low", "100.5"), "column 'low': low 100.5 > min(open, close) 100.0"),
       "negative volume": (_edit(2, "volume", "-6"), "row 2 (2024-01-01 01:00:00+00:00), column 'volume': negative volume -6.0")}


@pytest.mark.parametrize("case", BAD)
def test_bad_candles_fail_clearly_and_write_nothing(home, case):
    text, message = BAD[case]
    bad = home/"bad.csv"; bad.write_text(text)
    before = snapshot(home)
    for args in (["itff-fetch-data", "--source", bad], ["itff-engineer-features", bad], ["itff-prepare-sequences", "--ohlcv", bad]):
        r = run_cli(*args, cwd=home)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert message in r.stderr and str(bad) in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        assert snapshot(home) == before


def test_bad_options_fail_clearly(home):
    before = snapshot(home)
    cases = [(["itff-prepare-sequences", "--window", "48", "--embargo", "10"], "at least window + horizon = 52"),
             (["itff-prepare-sequences", "--label", "moon"], "unknown label 'moon'"),
             (["itff-prepare-sequences", "--val-start", "2024-01-01"], "give both --val-start and --test-start"),
             (["itff-fetch-data", "--timeframe", "7m", "--source", "bundled"], "unknown timeframe '7m'"),
             (["itff-fetch-sentiment", "--file", home/"nope.csv"], "nope.csv: no such file"),
             (["itff-engineer-features", "bundled", "--sentiment-file", home/"nope.parquet"], "nope.parquet: no such file"),
             (["itff-fetch-data", "--source", "ccxt", "--exchange", "notanexchange"], "unknown ccxt exchange 'notanexchange'")]
    for args, message in cases:
        r = run_cli(*args, cwd=home)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
    assert snapshot(home) == before


def test_train_then_evaluate_reproduces_metrics(home):
    "itff-train on a small candle file, then itff-evaluate: same test rows, same scores, same report files."
    from itff.train import synthetic_ohlcv
    candles = home/"candles.csv"
    synthetic_ohlcv(0.3, n=2500).reset_index().to_csv(candles, index=False)
    r = run_cli("itff-train", "--source", candles, "--label", "direction", "--model", "lstm", "--epochs", "2", "--window", "16",
                "--mc-samples", "5", "--threshold", "0.45", cwd=home)
    assert r.returncode == 0, r.stderr
    assert "does not beat climatology" in r.stdout or "beats climatology" in r.stdout
    trained = json.loads((home/"models/training/BTCUSDT_1h_direction_lstm_metrics.json").read_text())
    for f in ("model.keras", "scaler.json", "calibrator.json", "meta.json"):
        assert (home/"models/training/BTCUSDT_1h_direction_lstm"/f).exists()
    r = run_cli("itff-evaluate", "--label", "direction", "--model", "lstm", "--output", home/"again", cwd=home)
    assert r.returncode == 0, r.stderr
    again = json.loads((home/"again/BTCUSDT_1h_direction_lstm/metrics.json").read_text())
    assert again["test"] == trained["test"]
    for name in ("model", "model_raw", "climatology", "logistic", "gbm"):
        for k in ("roc_auc", "brier", "bss", "ece", "log_loss"):
            assert again["scores"][name][k] == pytest.approx(trained["scores"][name][k], abs=1e-9), (name, k)
    assert again["at_threshold"]["model"]["threshold"] == 0.45
    assert {p.name for p in (home/"reports/BTCUSDT_1h_direction_lstm").iterdir()} == {p.name for p in (home/"again/BTCUSDT_1h_direction_lstm").iterdir()}


def candle_file(home, phi, n):
    "(path, frame) of synthetic AR(1) candles written as a CSV in `home`."
    from itff.train import synthetic_ohlcv
    ohlcv = synthetic_ohlcv(phi, n=n)
    ohlcv.reset_index().to_csv(home/"candles.csv", index=False)
    return home/"candles.csv", ohlcv


def test_gbm_on_volatility_inputs_trains_evaluates_and_serves(home):
    "A gbm bundle on the vol inputs: LightGBM text members, the touch formula beside the references, itff-evaluate and the Predictor agree."
    from itff.predictor import Predictor
    candles, ohlcv = candle_file(home, 0.0, 4000)
    r = run_cli("itff-train", "--source", candles, "--label", "level_up", "--model", "gbm", "--features", "vol",
                "--window", "16", "--n-boot", "50", cwd=home)
    assert r.returncode == 0, r.stderr
    bundle = home/"models/training/BTCUSDT_1h_level_up_gbm"
    meta = json.loads((bundle/"meta.json").read_text())
    assert meta["model_files"] == [f"gbm_{i}.txt" for i in range(5)] and not list(bundle.glob("*.keras"))
    assert meta["config"]["features"] == "vol" and {"touch_probability", "lrv_parkinson_1d"} <= set(meta["features"])
    trained = json.loads((bundle.parent/"BTCUSDT_1h_level_up_gbm_metrics.json").read_text())
    assert "touch_formula" in trained["scores"] and trained["uncertainty"]["mean_std"] > 0     # the bags' spread
    r = run_cli("itff-evaluate", "--label", "level_up", "--model", "gbm", "--output", home/"again", cwd=home)
    assert r.returncode == 0, r.stderr
    again = json.loads((home/"again/BTCUSDT_1h_level_up_gbm/metrics.json").read_text())
    for name in ("model", "gbm", "touch_formula"):
        assert again["scores"][name]["brier"] == pytest.approx(trained["scores"][name]["brier"], abs=1e-9), name
    preds = pd.read_csv(home/"reports/BTCUSDT_1h_level_up_gbm/predictions.csv", index_col=0, parse_dates=True)
    last = preds.index[-1]
    served = Predictor.load(path=bundle).predict_candles(ohlcv.loc[:last])
    assert served["bar_time"] == str(last) and served["mc_samples"] == 5
    assert served["probability"] == pytest.approx(preds.p_model.iloc[-1], abs=1e-6)


def test_blend_bundle_scores_its_members_and_serves_as_evaluated(home):
    "A blend bundle (LSTM + gbm, stacked out of fold): its files, both members in the report, served as itff-evaluate scores it."
    from itff.predictor import Predictor
    candles, ohlcv = candle_file(home, 0.3, 3000)
    r = run_cli("itff-train", "--source", candles, "--label", "direction", "--model", "blend", "--epochs", "2",
                "--window", "16", "--mc-samples", "5", "--n-boot", "50", cwd=home)
    assert r.returncode == 0, r.stderr
    bundle = home/"models/training/BTCUSDT_1h_direction_blend"
    meta = json.loads((bundle/"meta.json").read_text())
    assert meta["model_files"] == ["blend.json"]
    assert {"blend_deep_0.keras", "blend_gbm_0.txt", "blend_gbm_4.txt"} <= set(json.loads((bundle/"hashes.json").read_text())["files"])
    trained = json.loads((bundle.parent/"BTCUSDT_1h_direction_blend_metrics.json").read_text())
    assert {"member_deep", "member_gbm"} <= set(trained["scores"]) and "touch_formula" not in trained["scores"]
    stack = json.loads((bundle/"blend.json").read_text())
    assert len(stack["coef"]) == 2 and stack["coef"] != [1.0, 1.0]       # fitted on the calibration part
    from itff.rescore import evaluate_bundle
    again = evaluate_bundle(bundle, output=home/"again", n_boot=50, chunk=1, log=lambda s: None, name="blend")   # MC masks drawn as served
    assert again["scores"]["member_gbm"]["brier"] == pytest.approx(trained["scores"]["member_gbm"]["brier"], abs=1e-9)
    preds = pd.read_csv(home/"again/blend/predictions.csv", index_col=0, parse_dates=True)
    served = Predictor.load(path=bundle).predict_candles(ohlcv.loc[:preds.index[-1]])
    assert served["mc_samples"] == 5
    assert served["probability"] == pytest.approx(preds.p_model.iloc[-1], abs=1e-5)


def test_pooled_gbm_one_model_two_pairs_each_calibrated_and_served(home):
    "itff-train --symbols BTCUSDT,ETHUSDT --pooled: one model, one bundle per pair on one calendar, each served and rescored alone."
    from itff.data import load_ohlcv
    from itff.predictor import Predictor
    r = run_cli("itff-train", "--symbols", "BTCUSDT,ETHUSDT", "--pooled", "--label", "level_up", "--model", "gbm",
                "--features", "vol", "--n-boot", "50", cwd=home)
    assert r.returncode == 0, r.stderr
    root = home/"models/training"
    metas = {s: json.loads((root/f"{s}_1h_level_up_gbm_pooled/meta.json").read_text()) for s in ("BTCUSDT", "ETHUSDT")}
    assert metas["BTCUSDT"]["val_start"] == metas["ETHUSDT"]["val_start"]             # one calendar
    assert {"sym_BTCUSDT", "sym_ETHUSDT"} <= set(metas["ETHUSDT"]["features"])
    hashes = {s: json.loads((root/f"{s}_1h_level_up_gbm_pooled/hashes.json").read_text())["files"] for s in metas}
    assert hashes["BTCUSDT"]["gbm_0.txt"] == hashes["ETHUSDT"]["gbm_0.txt"]            # the same model …
    assert hashes["BTCUSDT"]["calibrator.json"] != hashes["ETHUSDT"]["calibrator.json"]   # … calibrated per pair
    for s in metas:
        preds = pd.read_csv(home/f"reports/{s}_1h_level_up_gbm_pooled/predictions.csv", index_col=0, parse_dates=True)
        served = Predictor.load(s, "1h", "level_up", "gbm_pooled", models_dir=home/"models").predict_candles(
            load_ohlcv(s, "1h").loc[:preds.index[-1]])
        assert served["probability"] == pytest.approx(preds.p_model.iloc[-1], abs=1e-6), s
    r = run_cli("itff-evaluate", "--symbol", "ETHUSDT", "--label", "level_up", "--model", "gbm_pooled", "--output", home/"again", cwd=home)
    assert r.returncode == 0, r.stderr
    again = json.loads((home/"again/ETHUSDT_1h_level_up_gbm_pooled/metrics.json").read_text())
    trained = json.loads((root/"ETHUSDT_1h_level_up_gbm_pooled_metrics.json").read_text())
    assert again["scores"]["model"]["brier"] == pytest.approx(trained["scores"]["model"]["brier"], abs=1e-9)


def test_context_pair_inputs_are_built_alike_in_training_rescoring_and_serving(home):
    "ETH with --context BTCUSDT: ctx_* inputs in the bundle; itff-evaluate and the Predictor (given BTC's candles) agree with training."
    from itff.core import DataError
    from itff.data import load_ohlcv
    from itff.predictor import Predictor
    r = run_cli("itff-train", "--symbol", "ETHUSDT", "--context", "BTCUSDT", "--label", "direction", "--model", "gbm",
                "--n-boot", "50", cwd=home)
    assert r.returncode == 0, r.stderr
    bundle = home/"models/training/ETHUSDT_1h_direction_gbm"
    meta = json.loads((bundle/"meta.json").read_text())
    assert meta["config"]["context"] == "BTCUSDT" and {"ctx_ret_1", "ctx_corr_1d"} <= set(meta["features"])
    r = run_cli("itff-evaluate", "--symbol", "ETHUSDT", "--label", "direction", "--model", "gbm", "--output", home/"again", cwd=home)
    assert r.returncode == 0, r.stderr
    again = json.loads((home/"again/ETHUSDT_1h_direction_gbm/metrics.json").read_text())
    trained = json.loads((bundle.parent/"ETHUSDT_1h_direction_gbm_metrics.json").read_text())
    assert again["scores"]["model"]["brier"] == pytest.approx(trained["scores"]["model"]["brier"], abs=1e-9)
    preds = pd.read_csv(home/"reports/ETHUSDT_1h_direction_gbm/predictions.csv", index_col=0, parse_dates=True)
    last, p = preds.index[-1], Predictor.load(path=bundle)
    eth, btc = load_ohlcv("ETHUSDT", "1h").loc[:last], load_ohlcv("BTCUSDT", "1h").loc[:last]
    with pytest.raises(DataError, match="also reads BTCUSDT's 1h candles"): p.predict_candles(eth)
    assert p.predict_candles(eth, context=btc)["probability"] == pytest.approx(preds.p_model.iloc[-1], abs=1e-6)


def test_pooled_walkforward_writes_a_folder_per_pair(home):
    "itff-walkforward --symbols BTCUSDT,ETHUSDT --pooled: one model per fold on both pairs, scored and written per pair."
    r = run_cli("itff-walkforward", "--symbols", "BTCUSDT,ETHUSDT", "--pooled", "--label", "level_up", "--model", "gbm",
                "--val-start", "2025-01-01", "--test-start", "2025-06-01", "--folds", "2", "--n-boot", "50",
                "--output", home/"wf", cwd=home)
    assert r.returncode == 0, r.stderr
    folds = {s: pd.read_csv(home/f"wf/{s}_1h_level_up_gbm_pooled/folds.csv") for s in ("BTCUSDT", "ETHUSDT")}
    assert all(len(f) == 2 for f in folds.values())
    assert (folds["BTCUSDT"].train_last == folds["ETHUSDT"].train_last).all()              # one calendar per fold
    assert (folds["BTCUSDT"].base_rate_test != folds["ETHUSDT"].base_rate_test).all()      # each pair's own bars
    assert r.stdout.count("pooled") >= 2 and "ETHUSDT fold 2/2" in r.stdout


def test_train_and_evaluate_bad_input(home):
    before = snapshot(home)
    for args, message in [(["itff-train", "--model", "gru"], "unknown model type 'gru'"),
                          (["itff-train", "--class-weight", "heavy", "--epochs", "1"], "unknown class weighting 'heavy'"),
                          (["itff-train", "--features", "fancy"], "unknown feature set 'fancy'"),
                          (["itff-train", "--model", "gbm", "--ensemble", "3"], "gbm bags its own members"),
                          (["itff-train", "--symbols", "BTCUSDT", "--pooled"], "--pooled needs at least two --symbols"),
                          (["itff-train", "--context", "btc/usdt"], "must differ from the pair(s) forecast"),
                          (["itff-pipeline", "--symbols", "BTCUSDT,ETHUSDT", "--pooled"], "use itff-train --pooled"),
                          (["itff-evaluate", "--label", "level_up"], "no trained model here")]:
        r = run_cli(*args, cwd=home)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr[-500:])
        assert "Traceback" not in r.stderr
    assert snapshot(home) == before


def test_walkforward_cli(home):
    "itff-walkforward on a planted-signal candle file: one line per fold, per-fold and pooled tables, the files, skill found."
    from itff.train import synthetic_ohlcv
    candles = home/"candles.csv"
    synthetic_ohlcv(0.5, n=8000).reset_index().to_csv(candles, index=False)
    r = run_cli("itff-walkforward", "--source", candles, "--label", "direction", "--folds", "2", "--epochs", "8", "--window", "16",
                "--mc-samples", "5", "--n-boot", "50", cwd=home)
    assert r.returncode == 0, r.stderr
    assert "fold 1/2" in r.stdout and "fold 2/2" in r.stdout and "pooled" in r.stdout
    out = home/"reports/walkforward/BTCUSDT_1h_direction_lstm"
    folds = pd.read_csv(out/"folds.csv")
    assert len(folds) == 2 and (folds.bss_model > 0).all() and (folds.bss_logistic > 0).all()   # the AR(1) φ=0.5 signal, in every fold
    pooled = pd.read_csv(out/"pooled.csv").set_index("forecast")
    assert pooled.loc["model", "bss"] > 0.05 and pooled.loc["model", "p_vs_climatology"] < 0.05
    assert json.loads((out/"walkforward.json").read_text())["config"]["label"] == "direction"
    assert len(pd.read_csv(out/"predictions.csv")) == folds.n.sum()
    bad = run_cli("itff-walkforward", "--source", candles, "--folds", "0", cwd=home)
    assert bad.returncode == 2 and "at least 1 fold" in bad.stderr
    r = run_cli("itff-judge", "--runs", f"one={out},two={out}", "--baseline", "one", "--references", "two", "--n-boot", "50",
                "--output", home/"judged.csv", cwd=home)
    assert r.returncode == 0, r.stderr
    judged = pd.read_csv(home/"judged.csv").set_index("forecast")
    assert judged.loc["one", "n"] == folds.n.sum() and judged.loc["one", "Brier [95% CI]"] == judged.loc["two", "Brier [95% CI]"]
    assert judged.loc["ref_gbm", "BSS"] > 0 and "climatology" in judged.index      # the planted signal
    for args, message in [(["--runs", f"one={home}"], "not a walk-forward folder"), (["--runs", "one"], "name=folder pairs")]:
        bad = run_cli("itff-judge", *args, "--baseline", "one", "--references", "one", cwd=home)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
    assert _strict_json(home) >= 1                     # walkforward.json: strict JSON (defined below)


def test_fetch_data_reads_candle_files_as_people_have_them(home):
    "A Binance public-data ZIP (microsecond times, no header) and a CryptoDataDownload CSV (newest first) load like ITFF's layout."
    import zipfile
    from itff.data import load_ohlcv
    want = load_ohlcv("BTCUSDT", "1h", start="2025-09-01", end="2025-09-03")
    us = want.index.asi8 // 1000
    rows = "\n".join(",".join(map(str, [t, *r, t + 3_599_999_999, 1.0, 10, 1.0, 1.0, 0])) for t, r in zip(us, want.to_numpy()))
    with zipfile.ZipFile(home/"BTCUSDT-1h-2025-09.zip", "w") as z: z.writestr("BTCUSDT-1h-2025-09.csv", rows)
    cdd = "https://www.CryptoDataDownload.com\nunix,date,symbol,open,high,low,close,Volume BTC,Volume USDT,tradecount\n" + "\n".join(
        f"{t // 10**6},{d:%Y-%m-%d %H:%M:%S},BTCUSDT,{r[0]},{r[1]},{r[2]},{r[3]},{r[4]},0,0" for t, d, r in zip(want.index.asi8[::-1], want.index[::-1], want.to_numpy()[::-1]))
    (home/"Binance_BTCUSDT_1h.csv").write_text(cdd)
    for f in ("BTCUSDT-1h-2025-09.zip", "Binance_BTCUSDT_1h.csv"):
        r = run_cli("itff-fetch-data", "--source", home/f, "--timeframe", "1h", cwd=home)
        assert r.returncode == 0, r.stderr
        got = pd.read_parquet(next((home/"data/candles").glob("*.parquet")))
        pd.testing.assert_frame_equal(got, want, check_freq=False)
    (home/"odd.csv").write_text("when,price,size\n2025-01-01,1,2\n")
    before = snapshot(home)
    r = run_cli("itff-fetch-data", "--source", home/"odd.csv", cwd=home)
    assert r.returncode == 2 and "tried itff, binance, cryptodatadownload, yahoo, tradingview" in r.stderr and "['when', 'price', 'size']" in r.stderr
    assert snapshot(home) == before


def test_train_on_4h_bars_resampled_from_the_bundled_1h(home):
    "Any exchange timeframe: 4h bars resampled from the bundled 1h data; the label horizon is set in time (4 hours = 1 bar)."
    r = run_cli("itff-train", "--timeframe", "4h", "--label", "level_up", "--epochs", "1", "--window", "16", "--mc-samples", "5", cwd=home)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((home/"models/training/BTCUSDT_4h_level_up_lstm/meta.json").read_text())
    assert meta["timeframe"] == "4h" and meta["label"]["horizon"] == 1 and meta["label"]["horizon_time"] == "0 days 04:00:00"
    assert meta["embargo_bars"] == 16 + 1 and pd.Timestamp(meta["parts"]["test"]["first"]).hour % 4 == 0


def _one_line_error(r, *names):
    "The failed run `r` said what went wrong in one line on stderr, naming each of `names`, with status 2."
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    for n in names: assert str(n) in r.stderr, (n, r.stderr)


def test_unreadable_inputs_exit_2_and_change_nothing(home):
    "itff-fetch-data and itff-monitor on candle files that cannot be read, a log that is none, an output under a file."
    import gzip, zipfile
    from itff.data import load_ohlcv
    from itff.labels import label_spec
    from itff.predlog import PredictionLog
    btc = load_ohlcv("BTCUSDT", "1h", start="2025-06-01", end="2025-06-30")
    whole = gzip.compress(btc.reset_index().to_csv(index=False).encode())
    (home/"cut.csv.gz").write_bytes(whole[:len(whole) // 2])                       # a download that stopped halfway
    with zipfile.ZipFile(home/"ok.zip", "w") as z: z.writestr("a.csv", btc.reset_index().to_csv(index=False))
    (home/"cut.zip").write_bytes((home/"ok.zip").read_bytes()[:-60])
    (home/"empty.csv").write_bytes(b""); (home/"somefile").write_text("x"); (home/"empty.db").write_bytes(b"")
    log = PredictionLog(home/"predictions.db", checkpoint_every=0)
    log.append({"request_id": "r", "source": "api", "bundle_id": "b", "bundle_sha": "ab" * 32, "symbol": "BTCUSDT",
                "timeframe": "1h", "target": "direction", "model_type": "lstm", "label": label_spec("direction", "1h").to_dict(),
                "bar_time": btc.index[100], "probability": 0.6, "decision": True, "threshold": 0.5})
    log.close()
    before = snapshot(home)
    for f in ("cut.csv.gz", "cut.zip", "empty.csv"):
        _one_line_error(run_cli("itff-fetch-data", "--source", home/f, cwd=home), home/f)
    monitor = ["itff-monitor", "--db", home/"predictions.db", "--output", home/"reports/monitor.json"]
    for f in ("/nonexistent.csv", home/"cut.csv.gz", home/"cut.zip", home/"empty.csv", home):
        _one_line_error(run_cli(*monitor, "--source", f, cwd=home), f)
    _one_line_error(run_cli("itff-monitor", "--db", home/"empty.db", cwd=home), home/"empty.db", "an empty file")
    _one_line_error(run_cli(*monitor[:3], "--output", home/"somefile/monitor.json", cwd=home), home/"somefile", "is a file")
    assert snapshot(home) == before            # no cache, no monitor.json, the log unresolved, the empty file still empty
    r = run_cli(*monitor, "--source", "bundled", cwd=home)
    assert r.returncode == 0 and "resolved 1 forecasts" in r.stdout, r.stdout + r.stderr


def _not_json(constant):
    raise ValueError(f"{constant} is not JSON")


def _strict_json(folder):
    "Every *.json under `folder`, parsed as strict JSON (no NaN or Infinity, which only Python reads); how many."
    files = sorted(Path(folder).rglob("*.json"))
    for p in files:
        try: json.loads(p.read_text(), parse_constant=_not_json)
        except ValueError as e: pytest.fail(f"{p}: not strict JSON ({e})")
    return len(files)


def test_outputs_are_strict_json_and_incomplete_bundles_exit_2(tiny_home, tmp_path):
    "The trained bundles, reports and a monitor run hold strict JSON; itff-evaluate refuses a re-hashed meta lacking a key."
    from itff.artifacts import bundle_sha
    from itff.predlog import PredictionLog
    bundle = tiny_home/"models/training/BTCUSDT_1h_direction_lstm"
    preds = pd.read_csv(tiny_home/"reports/BTCUSDT_1h_direction_lstm/predictions.csv", index_col=0, parse_dates=True).tail(30)
    meta = json.loads((bundle/"meta.json").read_text())
    log = PredictionLog(tmp_path/"predictions.db", checkpoint_every=0)
    for t, p in zip(preds.index, preds.p_model):
        log.append({"request_id": str(t), "source": "api", "bundle_id": meta["id"], "bundle_sha": bundle_sha(bundle),
                    "symbol": "BTCUSDT", "timeframe": "1h", "target": "direction", "model_type": "lstm", "label": meta["label"],
                    "bar_time": t, "probability": float(p), "decision": False, "threshold": 1.0})
    log.close()
    r = run_cli("itff-monitor", "--db", tmp_path/"predictions.db", "--source", tiny_home/"btcusdt_candles.csv",
                "--models-dir", tiny_home/"models", "--output", tmp_path/"reports/monitor.json", cwd=tmp_path)
    assert r.returncode == 0 and "resolved 30 forecasts" in r.stdout, r.stdout + r.stderr
    assert _strict_json(tiny_home) >= 10 and _strict_json(tmp_path/"reports") == 1
    metrics = json.loads((bundle/"metrics.json").read_text())
    assert "win_rate" in metrics["backtest"]                      # the key that held NaN without trades
    cases = {"timeframe": (lambda m: {k: v for k, v in m.items() if k != "timeframe"}, "missing key 'timeframe'"),
             "symbol": (lambda m: {**m, "config": {k: v for k, v in m["config"].items() if k != "symbol"}},
                        "missing key 'symbol' in 'config'"),
             "data_range": (lambda m: {k: v for k, v in m.items() if k != "data_range"}, "missing key 'data_range'")}
    for name, (edit, message) in cases.items():
        copy = rehashed_copy(bundle, tmp_path/name/bundle.name, edit)
        r = run_cli("itff-evaluate", "--bundle", copy, "--output", tmp_path/"again", cwd=tmp_path)
        _one_line_error(r, f"{copy}/meta.json: {message}")
    assert not (tmp_path/"again").exists()
