import pytest

from alphasignal.chains.merge import merge_signals
from alphasignal.schemas import ChartSignal, NewsSentiment

BUY = ChartSignal(action="BUY", confidence=0.8, entry_price=100.0, stop_loss=95.0, take_profit=110.0, trend="uptrend")
SELL = ChartSignal(action="SELL", confidence=0.8, entry_price=100.0, stop_loss=105.0, take_profit=90.0, trend="downtrend")
HOLD = ChartSignal(action="HOLD", confidence=0.6, trend="sideways")
W = dict(chart_weight=0.6, news_weight=0.4, min_confidence=0.35)


def news(label, intensity=0.8):
    return NewsSentiment(sentiment=label, intensity=intensity, key_factors=["x"])


def test_agreement_matches_seed_example():
    result = merge_signals(BUY, news("BULLISH"), **W)
    assert (result.action, result.confidence, result.signals_aligned) == ("BUY", 0.8, True)


def test_disagreement_lowers_confidence_and_can_veto():
    neutral = merge_signals(BUY, news("NEUTRAL"), **W)
    against = merge_signals(BUY, news("BEARISH"), **W)
    assert neutral.action == "BUY" and neutral.confidence == pytest.approx(0.48)
    assert against.action == "HOLD" and against.signals_aligned is False
    assert any("below the threshold" in r for r in against.reasons)
    mild = merge_signals(BUY, news("BEARISH", 0.1), **W)
    assert mild.action == "BUY" and mild.confidence < neutral.confidence


def test_sell_is_symmetric():
    result = merge_signals(SELL, news("BEARISH"), **W)
    assert (result.action, result.confidence, result.signals_aligned) == ("SELL", 0.8, True)


def test_no_news_chart_decides_alone():
    result = merge_signals(BUY, None, **W)
    assert result.action == "BUY" and result.confidence == 0.8
    assert result.signals_aligned is None and result.weights == {"chart": 1.0, "news": 0.0}


def test_hold_never_becomes_a_trade_because_news_has_no_levels():
    result = merge_signals(HOLD, news("BULLISH", 1.0), **W)
    assert result.action == "HOLD" and result.signals_aligned is False


def test_weights_are_configurable_and_normalised():
    heavy_news = merge_signals(BUY, news("BEARISH"), chart_weight=1, news_weight=3, min_confidence=0.0)
    assert heavy_news.weights == {"chart": 0.25, "news": 0.75}
    assert heavy_news.action == "BUY" and heavy_news.confidence == 0.0


def test_merge_is_deterministic_and_explained():
    a = merge_signals(BUY, news("BULLISH", 0.3), **W)
    b = merge_signals(BUY, news("BULLISH", 0.3), **W)
    assert a == b
    assert a.reasons[0].startswith("chart: BUY") and a.reasons[1].startswith("news: BULLISH")
