"""The exception tree of alphasignal.

Every error a user can trigger is an ``AlphaSignalError``; the CLI prints its
one-line message and exits 1 (2 for usage errors). Nothing here imports the
rest of the package.

    AlphaSignalError
    ├── InputError                 bad user input, found where it enters
    │   ├── ImageError             missing / empty / not an image / truncated / too large
    │   │   └── NotAChartError     decodes, but is not a candlestick chart (the guard)
    │   ├── PriceDataError         CSV or ticker data unusable (missing columns, high < low, ...)
    │   └── NewsError              empty news, item too long, too many items
    ├── ConfigError                bad settings, unknown backend spec (with "did you mean")
    ├── BackendError               a backend could not answer
    │   ├── BackendUnavailable     server down, model missing, extra not installed (says the fix)
    │   ├── CapabilityError        backend cannot do this (e.g. builtin on a bare image)
    │   └── StructuredOutputError  model output never validated (carries the raw output)
    ├── BranchTimeout              a branch ran past its time limit
    ├── OutputError                decision file could not be written / lock not acquired
    └── ModelPipelineError         fine-tuning, export or serving could not proceed
        ├── TrainingError          no GPU / no base weights / bad dataset / extra not installed
        ├── ExportError            merge, GGUF conversion or quantization failed
        └── ServeError             server would not start or never became healthy
"""

from __future__ import annotations


class AlphaSignalError(Exception):
    """Base of every error alphasignal raises on purpose."""

    exit_code = 1

    def one_line(self) -> str:
        """The message squeezed onto one line, as the CLI prints it."""
        return " ".join(str(self).split())


class InputError(AlphaSignalError):
    """The user's input is unusable."""


class ImageError(InputError):
    """The chart image cannot be used."""


class NotAChartError(ImageError):
    """The image decodes but does not look like a candlestick price chart."""


class PriceDataError(InputError):
    """The OHLCV data cannot be used."""


class NewsError(InputError):
    """The news input cannot be used."""


class ConfigError(AlphaSignalError):
    """Settings or a backend spec are invalid."""

    exit_code = 2


class BackendError(AlphaSignalError):
    """A backend failed to produce an answer."""


class BackendUnavailable(BackendError):
    """The backend cannot be reached or is not installed; the message says the fix."""


class CapabilityError(BackendError):
    """The backend cannot do what was asked (for example, read a bare image)."""


class StructuredOutputError(BackendError):
    """The model's output never validated against the schema."""

    def __init__(self, message: str, raw_output: str = "", attempts: int = 0):
        super().__init__(message)
        self.raw_output = raw_output
        self.attempts = attempts


class BranchTimeout(AlphaSignalError):
    """A branch of the graph ran past its time limit."""


class OutputError(AlphaSignalError):
    """The decision could not be written."""


class ModelPipelineError(AlphaSignalError):
    """Fine-tuning, exporting or serving a model could not proceed."""


class TrainingError(ModelPipelineError):
    """Training cannot start or failed (no GPU, no base weights, unusable dataset, missing extra)."""


class ExportError(ModelPipelineError):
    """Merging, converting to GGUF or quantizing failed."""


class ServeError(ModelPipelineError):
    """A model server could not be started or never became healthy."""
