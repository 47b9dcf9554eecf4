"""The contract every backend honours; each backend's test module subclasses ``BackendContract``.

A subclass provides the ``backend`` fixture (a ready Backend) and, for vision
backends, ``chart_input``. The tests here check what the graph relies on:
typed results or typed errors, capabilities that tell the truth, schema-valid output.
"""

from __future__ import annotations

import pytest

from alphasignal.backends.base import Backend, Capabilities
from alphasignal.errors import AlphaSignalError, CapabilityError, StructuredOutputError
from alphasignal.schemas import ChartInput, ChartSignal, NewsInput, NewsSentiment

NEWS = NewsInput(items=("Apple beats expectations with +12% revenue",), ticker="AAPL")


class BackendContract:
    """Subclass and provide the ``backend`` fixture (and ``chart_input`` for vision backends)."""

    #: set False in a subclass whose model is random/tiny and may legitimately never validate
    expects_valid_answers = True

    def test_has_capabilities(self, backend: Backend) -> None:
        assert isinstance(backend.capabilities, Capabilities)
        assert backend.model_name
        assert backend.spec.label.startswith(backend.provider)

    async def test_news_gives_sentiment_or_typed_error(self, backend: Backend) -> None:
        if not backend.capabilities.text:
            with pytest.raises(CapabilityError):
                await backend.analyze_news(NEWS)
            return
        try:
            result = await backend.analyze_news(NEWS)
        except StructuredOutputError as exc:
            assert not self.expects_valid_answers, f"valid answer expected, got {exc}"
            assert exc.attempts >= 1 and exc.raw_output
            return
        assert isinstance(result, NewsSentiment)
        assert 0.0 <= result.intensity <= 1.0

    async def test_chart_gives_signal_or_typed_error(self, backend: Backend, chart_input: ChartInput) -> None:
        try:
            result = await backend.analyze_chart(chart_input)
        except CapabilityError:
            assert not backend.capabilities.vision or chart_input.image is None
            return
        except StructuredOutputError as exc:
            assert not self.expects_valid_answers, f"valid answer expected, got {exc}"
            assert exc.raw_output
            return
        except AlphaSignalError as exc:  # pragma: no cover - shows the message on failure
            pytest.fail(f"unexpected error from {backend.spec.label}: {exc}")
        assert isinstance(result, ChartSignal)
        if result.action != "HOLD":
            assert result.entry_price and result.stop_loss and result.take_profit
