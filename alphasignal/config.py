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
    """How a decision is made: which backends, weights, limits, retries."""

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


class DatasetConfig(_Section):
    ticker: str = "AAPL"
    period: str = "2y"
    interval: str = "1d"
    window: int = Field(60, ge=10)
    stride: int = Field(5, ge=1)
    horizon: int = Field(5, ge=1)
    image_size: int = Field(512, ge=64)
    style: str = "charles"
    output_dir: Path = Path("dataset")


class TrainingConfig(_Section):
    base_model: str = "unsloth/Qwen2.5-VL-3B-Instruct"
    lora_r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    learning_rate: float = 2e-4
    epochs: int = 1
    batch_size: int = 2
    grad_accum: int = 4
    max_image_pixels: int = 512 * 512
    output_dir: Path = Path("models")


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
