"""ccxt and yfinance through the real fetch/cache code, with stand-ins that have the libraries' interfaces."""
import ccxt
import pandas as pd
import pytest
import itff.data as data
from itff.core import DataError, ITFFError
from conftest import synthetic_candles


@pytest.fixture
def live(monkeypatch):
    "A replayed exchange whose candles run up to the real clock, behind make_exchange."
    now = pd.Timestamp.now(tz="UTC")
    ex = data.ReplayExchange(synthetic_candles(now, periods=24 * 120), now, fail_first=1)
    monkeypatch.setattr(data, "make_exchange", lambda exchange_id="binance": ex)
    monkeypatch.setattr(data.time, "sleep", lambda s: None)
    return ex


def test_fetch_data_cli_ccxt_then_incremental(home, live, capsys):
    path = data.itff_fetch_data(symbol="BTC/USDT", timeframe="1h", source="ccxt", days=30)
    first = pd.read_parquet(path)
    assert 30 * 24 - 2 <= len(first) <= 30 * 24 + 1
    assert first.index[-1] + pd.Timedelta(hours=1) <= live.now              # the forming bar is not cached
    assert live.calls[0][:2] == ("BTC/USDT", "1h") and len(live.calls) >= 3  # retried after the rate limit, paginated
    assert "no gaps" in capsys.readouterr().out
    n = len(live.calls)
    live.now += pd.Timedelta(hours=5)
    live.candles = synthetic_candles(live.now, periods=24 * 120)
    second = pd.read_parquet(data.itff_fetch_data(symbol="BTCUSDT", timeframe="1h", source="ccxt", days=30))
    assert live.calls[n][2] == int((first.index[-1] + pd.Timedelta(hours=1)).value // 10**6)  # asks only for new bars
    assert len(second) - len(first) in (4, 5, 6)


def test_load_ohlcv_ccxt_start(home, live):
    df = data.load_ohlcv("ETHUSDT", "1h", source="ccxt", start=live.now - pd.Timedelta(days=3))
    assert df.index[0] >= live.now - pd.Timedelta(days=3) and len(df) >= 70


def test_ccxt_error_paths(home, live):
    live.fail_first = 99
    with pytest.raises(ITFFError, match="gave up after 6 tries: RateLimitExceeded"):
        data.fetch_ccxt("BTCUSDT", "1h", since=live.now - pd.Timedelta(days=1), exchange=live, backoff=0, progress=False)
    live.fail_first = 0
    live.fetch_ohlcv = lambda *a, **k: [[1, 2, 3, 4]]
    with pytest.raises(DataError, match="malformed fetch_ohlcv response, row 1"):
        data.fetch_ccxt("BTCUSDT", "1h", since=live.now - pd.Timedelta(days=1), exchange=live, progress=False)
    def timeout(*a, **k): raise ccxt.RequestTimeout("read timed out")
    live.fetch_ohlcv, sleeps = timeout, []
    with pytest.raises(ITFFError, match="RequestTimeout"):
        data.fetch_ccxt("BTCUSDT", "1h", since=live.now - pd.Timedelta(days=1), exchange=live, max_retries=3, sleep=sleeps.append, progress=False)
    assert sleeps == [1.0, 2.0, 4.0]   # exponential backoff


def yf_download(tickers, start=None, end=None, interval="1d", **kw):
    "yfinance.download's flat layout (multi_level_index=False): a UTC index named Datetime."
    df = synthetic_candles(pd.Timestamp(end), periods=24 * 90, freq=interval).loc[pd.Timestamp(start):pd.Timestamp(end)]
    out = pd.DataFrame({"Adj Close": df.close, "Close": df.close, "High": df.high, "Low": df.low, "Open": df.open, "Volume": df.volume})
    return out.rename_axis("Datetime")


def test_yfinance_through_cache(home, monkeypatch):
    import yfinance
    seen = []
    monkeypatch.setattr(yfinance, "download", lambda *a, **k: seen.append((a, k)) or yf_download(*a, **k))
    df = data.load_ohlcv("BTCUSDT", "1h", source="yfinance", days=10)
    assert seen[0][0] == ("BTC-USD",) and seen[0][1]["interval"] == "1h"
    assert df.index[-1] + pd.Timedelta(hours=1) <= pd.Timestamp.now(tz="UTC")
    assert (home/"data/candles/BTCUSDT_1h_yfinance.parquet").exists()
    with pytest.warns(UserWarning, match="last 729 days"):
        data.fetch_yfinance("BTCUSDT", "1h", since="2020-01-01", download=yf_download)
    monkeypatch.setattr(yfinance, "download", lambda *a, **k: yf_download(*a, **k).drop(columns="Low"))
    with pytest.raises(DataError, match=r"yfinance BTC-USD 1h: missing column\(s\) \['low'\]"):
        data.fetch_yfinance("BTCUSDT", "1h")
