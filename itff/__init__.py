"""Intelligent Trading Forecast Framework: calibrated, probabilistic intraday forecasts for BTC/USDT and ETH/USDT"""

__version__ = "0.1.0"
