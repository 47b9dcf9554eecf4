"""The structured-output helper with LangChain's own fake chat model (no network, no model)."""

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage

from alphasignal.chains.structured import ainvoke_structured, extract_json
from alphasignal.errors import StructuredOutputError
from alphasignal.schemas import NewsSentiment

VALID = '{"sentiment": "BULLISH", "intensity": 0.7, "key_factors": ["beat"]}'


class RecordingFake(FakeListChatModel):
    seen: list = []

    def _call(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        return super()._call(messages, stop, run_manager, **kwargs)


async def test_valid_first_answer():
    model = FakeListChatModel(responses=[VALID])
    result = await ainvoke_structured(model, [HumanMessage("x")], NewsSentiment, max_retries=2)
    assert result.sentiment == "BULLISH" and result.intensity == 0.7


async def test_json_inside_prose_or_fences_is_found():
    model = FakeListChatModel(responses=["Sure!\n```json\n" + VALID + "\n```"])
    assert (await ainvoke_structured(model, [HumanMessage("x")], NewsSentiment, max_retries=0)).intensity == 0.7


async def test_reask_feeds_the_validation_error_back():
    model = RecordingFake(responses=['{"sentiment": "BULLISH", "intensity": 7}', VALID])
    model.seen = []
    result = await ainvoke_structured(model, [HumanMessage("x")], NewsSentiment, max_retries=1)
    assert result.intensity == 0.7
    second_prompt = model.seen[1][-1].content
    assert "intensity" in second_prompt and "less than or equal to 1" in second_prompt


async def test_never_valid_raises_with_raw_output():
    model = FakeListChatModel(responses=["not json", '{"sentiment": "UP"}', "{}"])
    with pytest.raises(StructuredOutputError) as info:
        await ainvoke_structured(model, [HumanMessage("x")], NewsSentiment, max_retries=2)
    assert info.value.attempts == 3
    assert info.value.raw_output == "{}"
    assert "never validated as NewsSentiment after 3 attempt" in str(info.value)


def test_extract_json_without_object():
    with pytest.raises(ValueError):
        extract_json("no braces here")
