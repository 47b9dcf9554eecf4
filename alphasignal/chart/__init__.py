"""Price data (CSV, yfinance), chart rendering and TA-Lib analysis."""
