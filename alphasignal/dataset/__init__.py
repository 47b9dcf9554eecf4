"""The chart dataset builder: prices -> charts -> labels -> fine-tuning-ready multimodal JSONL.

    >>> from pathlib import Path
    >>> from alphasignal.config import DatasetConfig
    >>> from alphasignal.dataset import build_dataset, load_hf
    >>> report = build_dataset(DatasetConfig(), out=Path("data/charts"), csv=[Path("datasets/ohlcv")])
    >>> print(report.summary())
    >>> ds = load_hf("data/charts")        # a datasets.DatasetDict: train / val / test

matplotlib, mplfinance and ``datasets`` are imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["BuildReport", "build_dataset", "load_hf", "run_render_benchmark"]

_LAZY = {
    "BuildReport": "alphasignal.dataset.build",
    "build_dataset": "alphasignal.dataset.build",
    "load_hf": "alphasignal.dataset.hf",
    "run_render_benchmark": "alphasignal.dataset.bench",
}

if TYPE_CHECKING:  # pragma: no cover
    from .bench import run_render_benchmark
    from .build import BuildReport, build_dataset
    from .hf import load_hf


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'alphasignal.dataset' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
