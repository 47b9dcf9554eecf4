"""Serve an exported model: llama-cpp-python's server, vLLM or Ollama; print the backend spec for ``analyze``.

An export folder (``alphasignal export``) holds ``<name>.<quant>.gguf``,
``mmproj-<name>.gguf``, an Ollama ``Modelfile``, ``merged/`` (the merged Hugging
Face checkpoint) and ``export.json``. llama-server and Ollama serve the GGUF pair;
vLLM serves ``merged/``.

Each server is either printed as the exact command (``--print``) or started as a
child process, polled until ``GET /v1/models`` answers, and reported as the spec
to pass to ``analyze`` (``openai:<name>@http://host:port/v1``). Ollama has no
process of ours: the model is created through the running server's HTTP API
(blobs, then ``/api/create``), as ``ollama create`` does.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import ServeError

EXPORT_FILE = "export.json"
HEALTH_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
TAIL_CHARS = 600
# llama-cpp-python's generic multimodal handler: the GGUF's own chat template + libmtmd
LLAMA_SERVER_CHAT_FORMAT = "mtmd"
VLLM_IMAGE_LIMIT = '{"image":1,"video":0}'
EXPORT_HINT = "run `alphasignal export RUN_DIR --out EXPORT` first"


# --- the export folder ---------------------------------------------------------------------


@dataclass(frozen=True)
class ExportInfo:
    """The files of an export folder that the servers need.

    ``export.json`` (written by ``alphasignal export``) names them with the keys
    ``name``, ``model``, ``mmproj``, ``merged`` (null when a full checkpoint was
    exported: then ``source``) — paths absolute or relative to the folder.
    """

    folder: Path
    name: str
    model: Path  # text GGUF
    mmproj: Optional[Path]  # vision projector GGUF
    modelfile: Optional[Path]
    merged: Optional[Path]  # merged HF checkpoint for vLLM


def read_export(folder: Path) -> ExportInfo:
    """The export in ``folder``: names from ``export.json`` when present, else found by file pattern."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ServeError(f"export folder not found: {folder}; {EXPORT_HINT}")
    meta = _export_json(folder)
    ggufs = sorted(folder.glob("*.gguf"))
    mmproj = _pick(folder, meta, "mmproj", [p for p in ggufs if p.name.startswith("mmproj")])
    model = _pick(folder, meta, "model", [p for p in ggufs if not p.name.startswith("mmproj")])
    if model is None:
        raise ServeError(f"no model GGUF in {folder}; {EXPORT_HINT}")
    modelfile = folder / "Modelfile"
    merged = _pick(folder, meta, "merged", [folder / "merged"] if (folder / "merged").is_dir() else [])
    source = Path(str(meta.get("source") or ""))
    if merged is None and meta.get("source") and (source / "config.json").is_file():
        merged = source  # exported from a full checkpoint: vLLM serves that checkpoint
    return ExportInfo(
        folder=folder,
        name=str(meta.get("name") or model.name.split(".")[0]),
        model=model,
        mmproj=mmproj,
        modelfile=modelfile if modelfile.is_file() else None,
        merged=merged,
    )


def _export_json(folder: Path) -> dict[str, Any]:
    path = folder / EXPORT_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ServeError(f"cannot read {path}: {exc}; re-run `alphasignal export`") from exc
    if not isinstance(data, dict):
        raise ServeError(f"{path} is not a JSON object; re-run `alphasignal export`")
    return data


def _pick(folder: Path, meta: dict[str, Any], key: str, found: list[Path]) -> Optional[Path]:
    """``export.json``'s ``key`` when it exists, else the one file found by pattern.

    A recorded absolute path that is gone is looked for by name in ``folder``, so an
    export folder can be moved or copied to another machine.
    """
    named = meta.get(key)
    if isinstance(named, str) and named:
        path = Path(named) if Path(named).is_absolute() else folder / named
        if not path.exists() and (folder / path.name).exists():
            path = folder / path.name
        if not path.exists():
            raise ServeError(f"{folder / EXPORT_FILE} names {key} {named!r}, which is missing; re-run `alphasignal export`")
        return path
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ServeError(f"{folder} holds several {key} files ({names}); keep one or name it in {EXPORT_FILE}")
    return found[0] if found else None


def gguf_has_chat_template(path: Path) -> bool:
    from ..backends.tiny_mmproj import read_gguf_metadata

    key = "tokenizer.chat_template"
    return bool(read_gguf_metadata(path, [key]).get(key))


# --- commands --------------------------------------------------------------------------------


def openai_spec(name: str, host: str, port: int) -> str:
    """The ``analyze`` backend spec for an OpenAI-compatible server."""
    return f"openai:{name}@{base_url(host, port)}"


def base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/v1"


def llama_server_command(export: ExportInfo, host: str, port: int, n_ctx: int) -> list[str]:
    """``python -m llama_cpp.server`` with the GGUF, its projector and the mtmd chat format."""
    if export.mmproj is None:
        raise ServeError(f"{export.folder} has no mmproj-*.gguf: the chart branch needs vision; {EXPORT_HINT}")
    if not gguf_has_chat_template(export.model):
        raise ServeError(
            f"{export.model.name} carries no tokenizer.chat_template, which llama_cpp.server's "
            f"'{LLAMA_SERVER_CHAT_FORMAT}' chat format needs: re-export from a checkpoint with a chat template, "
            f"or run it in process with --chart-backend llamacpp:{export.model} --mmproj {export.mmproj}"
        )
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(export.model),
        "--clip_model_path", str(export.mmproj),
        "--chat_format", LLAMA_SERVER_CHAT_FORMAT,
        "--model_alias", export.name,
        "--host", host, "--port", str(port),
        "--n_ctx", str(n_ctx),
    ]


def vllm_command(
    export: ExportInfo, host: str, port: int, max_model_len: int, gpu_memory_utilization: float,
    executable: str = "vllm",
) -> list[str]:
    """``vllm serve`` on the merged checkpoint (vLLM does not take our GGUF + mmproj pair)."""
    if export.merged is None:
        raise ServeError(f"{export.folder} has no merged/ checkpoint, which vLLM serves; {EXPORT_HINT}")
    return [
        executable, "serve", str(export.merged),
        "--served-model-name", export.name,
        "--host", host, "--port", str(port),
        "--max-model-len", str(max_model_len),
        "--gpu-memory-utilization", str(gpu_memory_utilization),
        "--limit-mm-per-prompt", VLLM_IMAGE_LIMIT,
    ]


def ollama_create_command(export: ExportInfo, name: str) -> list[str]:
    if export.modelfile is None:
        raise ServeError(f"{export.folder} has no Modelfile; {EXPORT_HINT}")
    return ["ollama", "create", name, "-f", str(export.modelfile)]


def shell_line(command: Sequence[str]) -> str:
    return shlex.join(command)


# --- running a server ------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free on ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((target, port)) == 0


# Servers left running by --detach: held here so that Python does not warn (ResourceWarning)
# about a child it did not wait for; the child runs in its own session and outlives us.
_DETACHED: list["ServerProcess"] = []


class ServerProcess:
    """A model server started as a child process, its output in a log file."""

    def __init__(
        self, command: Sequence[str], url: str, *, env: Optional[dict[str, str]] = None,
        log_dir: Optional[Path] = None,
    ):
        self.command = list(command)
        self.url = url
        fd, log = tempfile.mkstemp(prefix="alphasignal-serve-", suffix=".log", dir=log_dir)
        os.close(fd)
        self.log_path = Path(log)
        self.env = env
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "ServerProcess":
        with open(self.log_path, "wb") as log:
            try:
                # own session: Ctrl-C reaches us, and we stop the child in order (or leave it, --detach)
                self.proc = subprocess.Popen(
                    self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True, env=self.env,
                )
            except OSError as exc:
                raise ServeError(f"cannot start {self.command[0]}: {exc}; check that it is installed") from exc
        return self

    def tail(self, chars: int = TAIL_CHARS) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " ".join(text[-chars:].split())

    def wait_healthy(self, timeout_s: float = HEALTH_TIMEOUT_S, poll_s: float = 0.25) -> float:
        """Seconds until ``GET <url>/models`` answered 200; ServeError (with the log's tail) otherwise."""
        import httpx

        start = time.monotonic()
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServeError(
                    f"{self.command[0]} exited with code {self.proc.returncode} before becoming healthy; "
                    f"its log ({self.log_path}) ends: {self.tail()}"
                )
            try:
                if httpx.get(f"{self.url}/models", timeout=2.0).status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            if time.monotonic() - start > timeout_s:
                self.stop()
                raise ServeError(
                    f"{self.url}/models did not answer within {timeout_s:g} s; raise --timeout or read "
                    f"{self.log_path}, which ends: {self.tail()}"
                )
            time.sleep(poll_s)

    def detach(self) -> int:
        """Leave the server running after this process exits; its pid."""
        if self.proc is None:
            raise ServeError("the server was never started")
        _DETACHED.append(self)
        return self.proc.pid

    def stop(self, timeout_s: float = STOP_TIMEOUT_S, keep_log: bool = True) -> Optional[int]:
        """SIGINT (uvicorn shuts down cleanly on it), then SIGTERM, then SIGKILL; the exit code."""
        if not keep_log:
            self.log_path.unlink(missing_ok=True)
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            try:
                proc.send_signal(sig)
                return proc.wait(timeout=timeout_s / 2 if sig != signal.SIGKILL else None)
            except subprocess.TimeoutExpired:
                continue
        return proc.returncode  # pragma: no cover - SIGKILL always ends the wait


def start_and_wait(
    command: Sequence[str], url: str, host: str, port: int, timeout_s: float = HEALTH_TIMEOUT_S,
    env: Optional[dict[str, str]] = None, log_dir: Optional[Path] = None,
) -> tuple[ServerProcess, float]:
    """Start ``command`` and wait for it; refuse a port that something else already answers on.

    On failure the server is stopped and its log kept (the error names it).
    """
    if port_in_use(host, port):
        raise ServeError(f"port {port} on {host} is already in use: pass --port with a free port, or stop that server")
    server = ServerProcess(command, url, env=env, log_dir=log_dir).start()
    try:
        return server, server.wait_healthy(timeout_s)
    except BaseException:
        server.stop()
        raise


def vllm_executable() -> Optional[str]:
    """The ``vllm`` command on PATH, if vLLM is installed."""
    return shutil.which("vllm")


# --- Ollama ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Modelfile:
    """The parts of a Modelfile that ``/api/create`` takes."""

    froms: tuple[str, ...]
    template: Optional[str]
    system: Optional[str]
    parameters: dict[str, Any]


def parse_modelfile(text: str) -> Modelfile:
    """FROM, TEMPLATE, SYSTEM and PARAMETER instructions (values may be \"\"\"-quoted over lines)."""
    froms: list[str] = []
    fields: dict[str, str] = {}
    params: dict[str, Any] = {}
    for instruction, value in _instructions(text):
        if instruction == "FROM":
            froms.append(value)
        elif instruction in ("TEMPLATE", "SYSTEM"):
            fields[instruction] = value
        elif instruction == "PARAMETER":
            key, _, raw = value.partition(" ")
            _add_parameter(params, key.strip(), _unquote(raw.strip()))
    return Modelfile(tuple(froms), fields.get("TEMPLATE"), fields.get("SYSTEM"), params)


def _instructions(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        instruction, _, value = line.partition(" ")
        value = value.strip()
        if value.startswith('"""'):
            body = value[3:]
            while '"""' not in body and i < len(lines):
                body += "\n" + lines[i]
                i += 1
            out.append((instruction.upper(), body.split('"""', 1)[0]))
        else:
            out.append((instruction.upper(), _unquote(value)))
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _add_parameter(params: dict[str, Any], key: str, raw: str) -> None:
    if key == "stop":  # repeatable: a list
        params.setdefault("stop", []).append(raw)
        return
    for cast in (int, float):
        try:
            params[key] = cast(raw)
            return
        except ValueError:
            continue
    params[key] = raw


def ollama_client(host: str, transport: Any = None) -> Any:
    try:
        import ollama
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ServeError("the ollama client is not installed: pip install 'alphasignal[ollama]'") from exc
    options = {"timeout": 600.0}
    if transport is not None:
        options["transport"] = transport
    return ollama.Client(host=host, **options)


def create_ollama_model(export: ExportInfo, name: str, host: str, transport: Any = None) -> str:
    """Upload the GGUF pair and create ``name`` from the Modelfile via Ollama's API; the ``ollama:`` spec."""
    import httpx
    from ollama import ResponseError

    if export.modelfile is None:
        raise ServeError(f"{export.folder} has no Modelfile; {EXPORT_HINT}")
    spec = parse_modelfile(export.modelfile.read_text(encoding="utf-8"))
    client = ollama_client(host, transport)
    try:
        files = {Path(ref).name: client.create_blob(_resolve_from(export, ref)) for ref in spec.froms}
        client.create(model=name, files=files, template=spec.template, system=spec.system,
                      parameters=spec.parameters or None)
        listed = {m.model for m in client.list().models}
    except (httpx.ConnectError, httpx.ConnectTimeout, ConnectionError) as exc:
        raise ServeError(f"cannot reach Ollama at {host}: start it with `ollama serve` (or pass --host URL)") from exc
    except ResponseError as exc:
        raise ServeError(f"Ollama at {host} refused to create {name!r}: {exc.error} (HTTP {exc.status_code})") from exc
    if not ({name, f"{name}:latest"} & listed):
        raise ServeError(f"Ollama created {name!r} but does not list it in /api/tags; run `ollama list` to check")
    return f"ollama:{name}"


def _resolve_from(export: ExportInfo, ref: str) -> Path:
    path = Path(ref)
    path = path if path.is_absolute() else export.folder / path
    if not path.is_file():
        raise ServeError(f"the Modelfile's FROM {ref} is not a file in {export.folder}; re-run `alphasignal export`")
    return path
