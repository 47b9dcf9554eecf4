import pytest

from alphasignal.config import load_settings
from alphasignal.errors import ConfigError


def test_precedence_flag_env_file_default(tmp_path, monkeypatch):
    toml = tmp_path / "a.toml"
    toml.write_text('[pipeline]\nchart_weight = 0.7\nnews_backend = "ollama:from-file"\nmax_retries = 4\n')
    monkeypatch.setenv("ALPHASIGNAL_PIPELINE__NEWS_BACKEND", "ollama:from-env")
    monkeypatch.setenv("ALPHASIGNAL_PIPELINE__MAX_RETRIES", "3")
    s = load_settings(toml, pipeline={"max_retries": 1})
    assert s.pipeline.max_retries == 1  # flag beats env and file
    assert s.pipeline.news_backend == "ollama:from-env"  # env beats file
    assert s.pipeline.chart_weight == 0.7  # file beats default
    assert s.pipeline.chart_backend == "builtin"  # default


def test_config_file_from_env_and_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "alphasignal.toml").write_text("[pipeline]\nmax_retries = 5\n")
    assert load_settings().pipeline.max_retries == 5
    other = tmp_path / "other.toml"
    other.write_text("[pipeline]\nmax_retries = 6\n")
    monkeypatch.setenv("ALPHASIGNAL_CONFIG", str(other))
    assert load_settings().pipeline.max_retries == 6


@pytest.mark.parametrize(
    "text, message",
    [
        ("[pipeline]\nbogus = 1\n", "pipeline.bogus"),
        ("[pipeline]\nchart_weight = 2\n", "pipeline.chart_weight"),
        ("[pipeline\n", "cannot read config"),
    ],
)
def test_bad_config_is_a_config_error(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_settings_are_frozen():
    s = load_settings()
    with pytest.raises(Exception):
        s.pipeline.chart_weight = 0.1
