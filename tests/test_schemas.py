import json

import pytest
from pydantic import ValidationError

from alphasignal.schemas import ChartSignal, DecisionMeta, NewsSentiment, TradingDecision, utcnow


def chart(**kw):
    base = dict(action="BUY", confidence=0.7, entry_price=100.0, stop_loss=95.0, take_profit=110.0, trend="uptrend")
    base.update(kw)
    return ChartSignal.model_validate_json(json.dumps(base))


def meta():
    return DecisionMeta(created_at=utcnow(), alphasignal_version="test")


def test_buy_levels_valid():
    sig = chart()
    assert sig.stop_loss < sig.entry_price < sig.take_profit


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(stop_loss=105.0), "stop_loss < entry_price"),
        (dict(take_profit=99.0), "stop_loss < entry_price"),
        (dict(action="SELL"), "take_profit < entry_price < stop_loss"),
        (dict(take_profit=None), "needs entry_price, stop_loss and take_profit"),
        (dict(entry_price="N/A"), "needs entry_price"),
    ],
)
def test_trade_level_rules(kw, message):
    with pytest.raises(ValidationError, match=message):
        chart(**kw)


def test_sell_levels_valid():
    sig = chart(action="SELL", stop_loss=105.0, take_profit=90.0, trend="downtrend")
    assert sig.take_profit < sig.entry_price < sig.stop_loss


@pytest.mark.parametrize("placeholder", ["N/A", "none", "None", "", "null", "-"])
def test_placeholders_become_none_for_hold(placeholder):
    sig = chart(action="HOLD", entry_price=placeholder, stop_loss=placeholder, take_profit=placeholder)
    assert (sig.entry_price, sig.stop_loss, sig.take_profit) == (None, None, None)


def test_placeholder_patterns_and_factors_dropped():
    assert chart(patterns=["hammer", "N/A", "none"]).patterns == ["hammer"]
    news = NewsSentiment.model_validate_json('{"sentiment":"BULLISH","intensity":0.5,"key_factors":["none","beat"]}')
    assert news.key_factors == ["beat"]


def test_strict_rejects_unknown_keys_and_bad_enums():
    with pytest.raises(ValidationError, match="Extra inputs"):
        chart(colour="red")
    with pytest.raises(ValidationError):
        chart(action="STRONG_BUY")
    with pytest.raises(ValidationError):
        NewsSentiment.model_validate_json('{"sentiment":"bullish","intensity":0.5}')


def test_confidence_bounds_enforced():
    with pytest.raises(ValidationError):
        chart(confidence=1.5)
    with pytest.raises(ValidationError):
        NewsSentiment(sentiment="NEUTRAL", intensity=-0.1)


def test_strict_rejects_numeric_strings():
    with pytest.raises(ValidationError):
        chart(confidence="0.7")


def test_failed_decision_must_abstain_with_errors():
    with pytest.raises(ValidationError, match="ABSTAIN exactly when"):
        TradingDecision(status="failed", final_action="HOLD", final_confidence=0.0, meta=meta())
    with pytest.raises(ValidationError, match="must say why"):
        TradingDecision(status="failed", final_action="ABSTAIN", final_confidence=0.0, meta=meta())
    with pytest.raises(ValidationError, match="ABSTAIN exactly when"):
        TradingDecision(status="ok", final_action="ABSTAIN", final_confidence=0.0, meta=meta())


def test_ok_trade_needs_levels():
    with pytest.raises(ValidationError, match="needs entry_price"):
        TradingDecision(status="ok", final_action="BUY", final_confidence=0.5, meta=meta())


def test_decision_round_trips_through_json():
    d = TradingDecision(
        status="ok", final_action="BUY", final_confidence=0.8, entry_price=100.0, stop_loss=95.0,
        take_profit=110.0, vlm_signal=chart(), meta=meta(),
    )
    again = TradingDecision.model_validate_json(d.model_dump_json())
    assert again == d
    assert again.schema_version == "1.0"


def test_llm_schema_has_descriptions_and_required_fields():
    schema = ChartSignal.model_json_schema()
    assert set(schema["required"]) == {"action", "confidence", "trend"}
    assert schema["properties"]["action"]["enum"] == ["BUY", "SELL", "HOLD"]
    assert schema["additionalProperties"] is False
    assert all("description" in p or "anyOf" in p or "$ref" in p for p in schema["properties"].values())
