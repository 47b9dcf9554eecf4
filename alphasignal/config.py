"""Settings: one object, nested sections, precedence flag > environment > TOML file > default.

Environment variables use the prefix ``ALPHASIGNAL_`` and ``__`` between a section
and a field, e.g. ``ALPHASIGNAL_PIPELINE__CHART_BACKEND=ollama:qwen2.5vl:3b``.
The TOML file is ``--config PATH``, else ``$ALPHASIGNAL_CONFIG``, else
``./alphasignal.toml`` when it exists. This is the only module that reads the
environment; everything else receives a ``Settings``.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from datetime import date
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .errors import ConfigError

_TOML_FILE: ContextVar[Optional[Path]] = ContextVar("_TOML_FILE", default=None)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PipelineConfig(_Section):
    """How a decision is made: which backends, weights, limits, retries.

    A chart image that comes without prices is read once by the chart reader before
    any chart backend is called: below ``guard_threshold`` it is refused with
    ``NotAChartError`` (0 turns the guard off), and with ``chart_grounding`` a vision
    backend's answer is checked against that reading.
    """

    chart_backend: str = Field("builtin", description="provider:model for the chart branch")
    news_backend: str = Field("builtin", description="provider:model for the news branch")
    chart_weight: float = Field(0.6, ge=0, le=1)
    news_weight: float = Field(0.4, ge=0, le=1)
    min_confidence: float = Field(0.35, ge=0, le=1, description="below this a trade becomes HOLD")
    chart_timeout_s: float = Field(180.0, gt=0)
    news_timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10, description="re-asks after an invalid model answer")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(512, ge=16)
    max_image_bytes: int = Field(20 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(40_000_000, gt=0)
    max_news_items: int = Field(50, gt=0)
    max_news_chars: int = Field(2000, gt=0, description="per item")
    history_file: Optional[Path] = Field(
        None, description="JSONL history; default: decisions.jsonl beside --output"
    )
    lock_timeout_s: float = Field(60.0, ge=0, description="wait this long for an overlapping run")
    guard_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="a bare chart image whose candlestick score (chart reader) is lower is refused before "
        "any chart backend is called; 0 turns the guard off",
    )
    chart_grounding: bool = Field(
        True,
        description="check a vision backend's levels, patterns and trend against the chart reader; "
        "disagreements go to meta.chart_grounding and lower the chart confidence",
    )

    @model_validator(mode="after")
    def _weights_sum(self) -> "PipelineConfig":
        if self.chart_weight + self.news_weight <= 0:
            raise ValueError("chart_weight + news_weight must be positive")
        return self


class BuiltinConfig(_Section):
    """The embedded analysis: indicator periods and ATR multiples for levels."""

    rsi_period: int = Field(14, ge=2)
    atr_period: int = Field(14, ge=2)
    sma_fast: int = Field(20, ge=2)
    sma_slow: int = Field(50, ge=3)
    pattern_lookback: int = Field(3, ge=1, le=20, description="bars scanned for patterns")
    atr_stop_mult: float = Field(1.5, gt=0)
    atr_target_mult: float = Field(3.0, gt=0)
    chart_bars: int = Field(90, ge=20, description="bars rendered for --csv / --ticker")
    reader_ocr: bool = Field(True, description="read the price axis of bare images by OCR")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> "BuiltinConfig":
        if self.sma_fast >= self.sma_slow:
            raise ValueError("sma_fast must be shorter than sma_slow")
        return self


class BackendsConfig(_Section):
    """Connection details for the model servers and in-process models."""

    ollama_host: str = "http://127.0.0.1:11434"
    openai_api_key: str = Field("not-needed", description="local servers accept any key")
    openai_structured: Literal["json_schema", "json_object", "guided_json"] = Field(
        "json_schema",
        description="structured-output flavour: json_schema (vLLM, LM Studio, llama-server), "
        "json_object (llama-cpp-python server), guided_json (older vLLM)",
    )
    llamacpp_mmproj: Optional[Path] = Field(None, description="vision projector GGUF")
    llamacpp_n_ctx: int = Field(4096, ge=256)
    llamacpp_n_threads: Optional[int] = None
    request_timeout_s: float = Field(120.0, gt=0)


class NewsConfig(_Section):
    """Where news comes from (RSS/Atom feeds), which items reach the model, and how they are weighed."""

    feeds: list[str] = Field(
        default_factory=list,
        description="RSS/Atom feed URLs or local files; '{ticker}' is replaced by the ticker",
    )
    ticker_feed: bool = Field(False, description="also read ticker_feed_template when a ticker is known (online)")
    ticker_feed_template: str = Field(
        "https://feeds.finance.yahoo.com/rss/2.0/headline?s={ticker}&region=US&lang=en-US",
        description="per-ticker headline feed (Yahoo Finance's RSS by default)",
    )
    aliases: dict[str, list[str]] = Field(
        default_factory=dict,
        description="ticker -> company names an item may mention instead, e.g. AAPL = [\"Apple\", \"iPhone\"]",
    )
    require_mention: bool = Field(True, description="keep only feed items that name the ticker or an alias")
    max_age_hours: float = Field(72.0, gt=0, description="feed items older than this are dropped")
    keep_undated: bool = Field(True, description="keep feed items that carry no date")
    max_items: int = Field(10, gt=0, description="most feed items that reach the model (newest, most relevant)")
    recency_half_life_hours: float = Field(
        24.0, gt=0, description="an item this old counts half as much as a fresh one"
    )
    on_feed_error: Literal["warn", "error"] = Field(
        "warn", description="a dead, HTML, malformed or empty feed: warn and go on, or fail the run"
    )
    injection: Literal["drop", "keep"] = Field(
        "drop", description="news items that read like instructions to a model: drop them, or keep them (flagged)"
    )
    timeout_s: float = Field(10.0, gt=0, description="per feed download")
    max_feed_bytes: int = Field(5 * 1024 * 1024, gt=0)


class DatasetConfig(_Section):
    """The chart dataset builder: price sources, windows, rendering, labels, splits.

    ``alphasignal dataset build`` reads this section; its flags override it.
    """

    # sources
    tickers: tuple[str, ...] = Field((), description="yfinance symbols (online, cached)")
    csv: tuple[Path, ...] = Field((), description="OHLCV CSV files or folders of *.csv")
    period: str = Field("10y", description="yfinance history length, e.g. 2y, 10y, max")
    interval: str = Field("1d", description="yfinance bar interval, e.g. 1h, 1d")
    cache_dir: Path = Field(
        Path(".alphasignal-cache/prices"), description="downloaded prices, so a rebuild does not refetch"
    )
    download_timeout_s: float = Field(20.0, gt=0)
    start: Optional[date] = Field(None, description="drop bars before this date")
    end: Optional[date] = Field(None, description="drop bars after this date")
    # windows
    timeframes: tuple[str, ...] = Field(
        ("1d", "1w"),
        description="bar sizes to build (1h, 4h, 1d, 1w, 1mo); coarser ones are resampled, finer ones skipped",
    )
    windows: tuple[int, ...] = Field(
        (60,), description="bars per chart; several: one is picked per sample"
    )
    stride: int = Field(5, ge=1, description="bars between consecutive window ends")
    # rendering
    image_width: int = Field(512, ge=128, le=2048)
    image_height: int = Field(512, ge=128, le=2048)
    styles: tuple[str, ...] = Field(
        ("charles",), description="mplfinance styles; several: one is picked per sample"
    )
    volume: bool = Field(True, description="volume panel (when the data has volume)")
    mav: tuple[int, ...] = Field((), description="simple moving averages drawn on the price panel")
    bollinger: bool = Field(False, description="Bollinger bands (20, 2) on the price panel")
    rsi_panel: bool = Field(False, description="RSI(14) panel")
    macd_panel: bool = Field(False, description="MACD(12, 26, 9) panel")
    title: bool = Field(True, description="ticker and timeframe above the chart")
    png_compress_level: int = Field(3, ge=0, le=9, description="zlib level of the PNGs (6: ~15% smaller, slower)")
    # labels
    horizon: int = Field(5, ge=1, description="bars after the window that decide the target")
    threshold_atr: float = Field(
        1.0, gt=0, description="BUY/SELL when the forward return reaches this many ATRs, else HOLD"
    )
    atr_period: int = Field(14, ge=2)
    atr_stop_mult: float = Field(1.5, gt=0, description="stop at entry -/+ this many ATRs")
    atr_target_mult: float = Field(3.0, gt=0, description="target at entry +/- this many ATRs")
    pattern_lookback: int = Field(3, ge=1, le=20, description="last bars scanned for candlestick patterns")
    price_context: float = Field(
        0.5, ge=0, le=1, description="share of prompts that carry the last bars as numbers, as the pipeline does"
    )
    # news pairing
    news_file: Optional[Path] = Field(None, description="CSV/JSONL of dated news: date, text[, ticker]")
    news_days: int = Field(3, ge=1, description="pair news from this many days up to the window's last bar")
    news_max_items: int = Field(5, ge=1, le=50)
    news_in_prompt: bool = Field(False, description="also put the paired news in the user turn")
    # splits
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, ge=0, lt=1)
    embargo: Optional[int] = Field(
        None, ge=1, description="bars kept out between splits, at least horizon (default: horizon)"
    )
    split_scope: Literal["ticker", "global"] = Field(
        "ticker", description="cut each ticker's own timeline, or all tickers at the same dates"
    )
    hard_negatives: bool = Field(False, description="pair each sample with a look-alike of another label")
    seed: int = Field(0, description="picks styles, window lengths and price context per sample")
    workers: Optional[int] = Field(None, ge=1, description="render processes (default: CPU count)")
    output_dir: Path = Path("dataset")

    @model_validator(mode="after")
    def _consistent(self) -> "DatasetConfig":
        if not self.windows or any(w < 20 or w > 500 for w in self.windows):
            raise ValueError("windows must be bar counts between 20 and 500")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% for train")
        if self.embargo is not None and self.embargo < self.horizon:
            raise ValueError(f"embargo ({self.embargo}) must be at least horizon ({self.horizon})")
        if not self.styles or not self.timeframes:
            raise ValueError("styles and timeframes must not be empty")
        if any(m < 2 for m in self.mav) or len(self.mav) > 4:
            raise ValueError("mav takes up to 4 periods >= 2")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self

    @property
    def embargo_bars(self) -> int:
        return self.embargo if self.embargo is not None else self.horizon


class TrainingConfig(_Section):
    """LoRA fine-tuning of the chart VLM (``alphasignal finetune train`` reads this section; its flags override it).

    ``method`` picks the path: ``unsloth`` is QLoRA with Unsloth on a CUDA GPU (4-bit base,
    the ``finetune`` extra); ``cpu`` is the same LoRA recipe with transformers + peft + TRL
    in full precision on the CPU (for the tiny model built by ``finetune init-tiny``, and to
    check a setup end to end); ``auto`` takes ``unsloth`` when CUDA is available, else ``cpu``.
    ``base_model`` is a local checkpoint folder or a hub id already in the local Hugging Face
    cache: weights are never downloaded. ``dataset`` is a folder built by ``alphasignal
    dataset build``: its ``train`` split trains, its ``val`` split (when not empty) gives
    ``eval_loss``. A run writes ``<output_dir>/<run_name>/`` (``adapter/``,
    ``checkpoints/``, ``summary.json``, ``loss.png``); ``run_name`` defaults to the base
    model's name plus a timestamp. ``max_steps`` (when set) overrides ``epochs``.
    LoRA goes on the ``target_modules`` projections of the language model, and also on
    the vision tower's attention and MLP layers with ``finetune_vision_layers``.
    ``resume`` continues the run from its latest checkpoint (an error when it has none).
    """

    method: Literal["auto", "unsloth", "cpu"] = Field("auto", description="auto: unsloth with CUDA, else cpu")
    base_model: str = Field(
        "unsloth/Qwen2.5-VL-3B-Instruct", description="local checkpoint folder, or a hub id in the local HF cache"
    )
    dataset: Path = Field(Path("dataset"), description="folder built by `alphasignal dataset build`")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = Field(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        description="language-model projections that get LoRA (attention + MLP)",
    )
    finetune_vision_layers: bool = Field(False, description="also put LoRA on the vision tower's layers")
    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(1, gt=0, description="passes over the train split (ignored when max_steps is set)")
    max_steps: Optional[int] = Field(None, ge=1, description="optimizer steps; overrides epochs")
    batch_size: int = Field(2, ge=1, description="per-device batch size")
    grad_accum: int = Field(4, ge=1, description="gradient accumulation steps")
    max_image_pixels: int = Field(512 * 512, ge=64 * 64, description="images are shrunk to at most this many pixels")
    max_seq_length: int = Field(2048, ge=64, description="tokens per sample (image tokens included)")
    save_steps: int = Field(50, ge=1, description="checkpoint (and val loss) every N steps")
    save_total_limit: Optional[int] = Field(2, ge=1, description="checkpoints kept (None: all)")
    logging_steps: int = Field(1, ge=1, description="record the train loss every N steps")
    seed: int = Field(3407)
    run_name: Optional[str] = Field(None, description="run folder name (default: base name + timestamp)")
    resume: bool = Field(False, description="continue the run from its latest checkpoint")
    output_dir: Path = Field(Path("models"), description="runs are written under this folder")

    @model_validator(mode="after")
    def _valid(self) -> "TrainingConfig":
        if not self.target_modules:
            raise ValueError("target_modules must name at least one layer")
        if self.run_name is not None and (not self.run_name.strip() or "/" in self.run_name or "\\" in self.run_name):
            raise ValueError("run_name must be a plain folder name")
        return self


class ServingConfig(_Section):
    """vLLM / llama-server launch settings (the seed's VLLMConfig)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    max_model_len: int = 4096


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALPHASIGNAL_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    pipeline: PipelineConfig = PipelineConfig()
    builtin: BuiltinConfig = BuiltinConfig()
    backends: BackendsConfig = BackendsConfig()
    dataset: DatasetConfig = DatasetConfig()
    training: TrainingConfig = TrainingConfig()
    serving: ServingConfig = ServingConfig()
    news: NewsConfig = NewsConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _TOML_FILE.get()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def config_path(explicit: Optional[Path] = None, environ: Optional[dict[str, str]] = None) -> Optional[Path]:
    """The TOML file to read: explicit, else $ALPHASIGNAL_CONFIG, else ./alphasignal.toml if present."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        if not Path(explicit).is_file():
            raise ConfigError(f"config file not found: {explicit}")
        return Path(explicit)
    if env.get("ALPHASIGNAL_CONFIG"):
        path = Path(env["ALPHASIGNAL_CONFIG"])
        if not path.is_file():
            raise ConfigError(f"ALPHASIGNAL_CONFIG points to a missing file: {path}")
        return path
    default = Path("alphasignal.toml")
    return default if default.is_file() else None


def load_settings(config_file: Optional[Path] = None, **overrides: Any) -> Settings:
    """Build the effective settings; ``overrides`` are flags, as nested dicts per section."""
    path = config_path(config_file)
    token = _TOML_FILE.set(path)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from exc
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    finally:
        _TOML_FILE.reset(token)
