"""The builtin chart reader: a candlestick image -> prices -> the same analysis as CSV input."""
