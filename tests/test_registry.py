import pytest

from alphasignal.backends.base import PROVIDERS, available_providers, backend_class, get_backend, parse_spec
from alphasignal.errors import ConfigError


def test_spec_splits_on_first_colon_only():
    spec = parse_spec("ollama:qwen2.5vl:3b")
    assert (spec.provider, spec.model, spec.label) == ("ollama", "qwen2.5vl:3b", "ollama:qwen2.5vl:3b")
    assert parse_spec("builtin").label == "builtin"


def test_unknown_provider_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'ollama'"):
        get_backend("olama:llava", None)


def test_empty_spec_is_rejected():
    with pytest.raises(ConfigError, match="empty backend spec"):
        parse_spec("  ")


def test_every_provider_resolves_to_a_backend_class():
    for name in PROVIDERS:
        cls = backend_class(name)
        assert cls.provider == name
    assert set(PROVIDERS) <= set(available_providers())


def test_builtin_refuses_an_image_that_is_not_a_chart(settings):
    import asyncio
    import io

    from PIL import Image

    from alphasignal.errors import NotAChartError
    from alphasignal.schemas import ChartInput

    buf = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 30, 30)).save(buf, format="PNG")
    backend = get_backend("builtin", settings)
    with pytest.raises(NotAChartError, match="not a candlestick chart") as info:
        asyncio.run(backend.analyze_chart(ChartInput(image=buf.getvalue(), ohlc=None)))
    assert "--csv" in str(info.value)
