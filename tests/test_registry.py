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


def test_builtin_on_a_bare_image_names_the_backends_that_can(settings):
    import asyncio

    from alphasignal.errors import CapabilityError
    from alphasignal.schemas import ChartInput

    backend = get_backend("builtin", settings)
    with pytest.raises(CapabilityError) as info:
        asyncio.run(backend.analyze_chart(ChartInput(image=b"png", ohlc=None)))
    message = str(info.value)
    assert "--csv" in message and "ollama:" in message and "llamacpp:" in message and "openai:" in message
