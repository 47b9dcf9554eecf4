"""The CLI end to end: demo, outputs, exit codes, and the bad-input list.

Every bad input gives a one-line error on stderr, a non-zero exit, and leaves an
existing decision file untouched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from alphasignal.cli import main
from alphasignal.schemas import TradingDecision

from .test_inputs import png_bytes

OLD = '{"old": true}\n'


@pytest.fixture
def out(tmp_path):
    path = tmp_path / "decision.json"
    path.write_text(OLD)
    return path


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_demo_prints_a_decision(capsys):
    code, stdout, stderr = run(capsys, "analyze", "--demo")
    assert code == 0, stderr
    assert "confidence" in stdout and "chart  builtin" in stdout and "news   builtin" in stdout


def test_demo_json_is_only_the_decision(capsys, out):
    code, stdout, _ = run(capsys, "analyze", "--demo", "--json", "--output", str(out))
    assert code == 0
    decision = TradingDecision.model_validate_json(stdout)
    assert decision.status == "ok" and decision.meta.data_source == "demo"
    assert TradingDecision.model_validate_json(out.read_text()) == decision
    history = (out.parent / "decisions.jsonl").read_text().splitlines()
    assert len(history) == 1 and json.loads(history[0])["final_action"] == decision.final_action


def test_csv_with_news_file(capsys, tmp_path):
    from alphasignal.chart.ohlc import demo_paths

    csv, _, _ = demo_paths()
    news = tmp_path / "news.txt"
    news.write_text("Apple beats expectations with +12% revenue\niPhone sales slump in China\n")
    code, stdout, _ = run(capsys, "analyze", "--csv", str(csv), "--news-file", str(news), "--json")
    assert code == 0
    decision = TradingDecision.model_validate_json(stdout)
    assert decision.meta.data_source == "csv" and decision.meta.news_count == 2
    assert decision.vlm_signal.indicators is not None  # grounded in the price data


def write_bad_csv(tmp_path, kind):
    path = tmp_path / f"{kind}.csv"
    rows = ["Date,Open,High,Low,Close,Volume"] + [
        f"2024-01-{d:02d},10,11,9,10.5,100" for d in range(1, 29)
    ]
    if kind == "missing-columns":
        rows = ["Date,Open,Close"] + [f"2024-01-{d:02d},10,10.5" for d in range(1, 29)]
    else:  # high < low on one row
        rows[5] = "2024-01-05,10,8,12,10,100"
    path.write_text("\n".join(rows) + "\n")
    return path


BAD = {
    "missing-image": (lambda t: ["--image", str(t / "nope.png")], "image not found"),
    "text-renamed-png": (lambda t: ["--image", str(_write(t / "x.png", b"hello"))], "not an image"),
    "truncated-png": (lambda t: ["--image", str(_write(t / "x.png", png_bytes((300, 300))[:200]))], "truncated"),
    "zero-bytes": (lambda t: ["--image", str(_write(t / "x.png", b""))], "0 bytes"),
    "csv-missing-columns": (lambda t: ["--csv", str(write_bad_csv(t, "missing-columns"))], "missing column"),
    "csv-high-below-low": (lambda t: ["--csv", str(write_bad_csv(t, "high-low"))], "high"),
    "empty-news": (lambda t: ["--demo", "--news", "  "], "news is empty"),
    "news-too-long": (lambda t: ["--demo", "--news", "x" * 5000], "news item too long"),
    "nothing-to-analyse": (lambda t: ["--news", "hi"], "nothing to analyse"),
    "unknown-backend": (lambda t: ["--demo", "--chart-backend", "olama:llava"], "did you mean 'ollama'"),
}


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_one_line_error_nonzero_and_file_untouched(capsys, tmp_path, out, case):
    make_args, message = BAD[case]
    code, stdout, stderr = run(capsys, "analyze", *make_args(tmp_path), "--output", str(out))
    assert code != 0
    assert message in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("alphasignal: error: ")
    assert out.read_text() == OLD
    assert not (out.parent / "decisions.jsonl").exists()


def test_image_over_size_limit(capsys, tmp_path, out, monkeypatch):
    monkeypatch.setenv("ALPHASIGNAL_PIPELINE__MAX_IMAGE_BYTES", "1000")
    image = _write(tmp_path / "big.png", png_bytes((400, 400)))
    code, _, stderr = run(capsys, "analyze", "--image", str(image), "--output", str(out))
    assert code == 1 and "image too large" in stderr and out.read_text() == OLD


def test_builtin_on_bare_image_says_which_backends_can(capsys, tmp_path, out):
    image = _write(tmp_path / "chart.png", png_bytes())
    code, _, stderr = run(capsys, "analyze", "--image", str(image), "--output", str(out))
    assert code == 1 and "--csv" in stderr and "ollama:" in stderr
    assert out.read_text() == OLD


def test_unknown_backend_is_a_usage_error(capsys):
    code, _, _ = run(capsys, "analyze", "--demo", "--news-backend", "nope:x")
    assert code == 2


class _Garbage(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({
            "id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": '{"sentiment": "MAYBE"}'}}],
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_model_output_that_never_validates(capsys, out):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        spec = f"openai:m@http://127.0.0.1:{server.server_address[1]}/v1"
        code, _, stderr = run(capsys, "analyze", "--demo", "--news-backend", spec, "--output", str(out))
    finally:
        server.shutdown()
        server.server_close()
    assert code == 1 and "never validated as NewsSentiment after 3 attempt" in stderr
    assert out.read_text() == OLD
    history = (out.parent / "decisions.jsonl").read_text().splitlines()
    assert json.loads(history[0])["status"] == "failed"


def test_backend_unreachable_names_the_fix(capsys, out, monkeypatch):
    monkeypatch.setenv("ALPHASIGNAL_BACKENDS__OLLAMA_HOST", "http://127.0.0.1:9")
    code, _, stderr = run(capsys, "analyze", "--demo", "--news-backend", "ollama:llama3:8b", "--output", str(out))
    assert code == 1
    assert "ollama serve" in stderr and "builtin" in stderr
    assert out.read_text() == OLD


def test_config_show_reflects_flags_and_env(capsys, monkeypatch):
    monkeypatch.setenv("ALPHASIGNAL_PIPELINE__CHART_WEIGHT", "0.7")
    code, stdout, _ = run(capsys, "config", "show", "--json", "--news-backend", "ollama:llama3:8b")
    data = json.loads(stdout)
    assert code == 0 and data["pipeline"]["chart_weight"] == 0.7
    assert data["pipeline"]["news_backend"] == "ollama:llama3:8b"
    code, stdout, _ = run(capsys, "config", "show")
    assert "[pipeline]" in stdout and "chart_weight = 0.7" in stdout


def test_backends_lists_capabilities(capsys):
    code, stdout, _ = run(capsys, "backends", "--json")
    rows = json.loads(stdout)
    assert code == 0 and rows["builtin"]["needs_price_data"] is True and rows["ollama"]["vision"] is True


def test_python_dash_m_and_usage_error():
    ok = subprocess.run([sys.executable, "-m", "alphasignal", "analyze", "--demo", "--json"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    TradingDecision.model_validate_json(ok.stdout)
    bad = subprocess.run([sys.executable, "-m", "alphasignal", "analyze", "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unrecognized arguments" in bad.stderr


@pytest.mark.slow
def test_eval_sentiment_reports_the_test_split(capsys):
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    code, stdout, _ = run(capsys, "eval", "sentiment", "--json", "--data", str(root / "datasets/financial_phrasebank/fpb_split.csv"))
    metrics = json.loads(stdout)
    assert code == 0
    assert metrics["test_all_agreement"]["n"] == 927 and metrics["test_all_agreement"]["accuracy"] >= 0.76
    assert metrics["test_agreement_100"]["accuracy"] >= 0.90
