"""``alphasignal serve ollama|vllm|llama-server EXPORT``: start (or print) a server for an exported model.

The backend spec to pass to ``analyze --chart-backend`` goes to stdout, alone on
its line; what the server is doing goes to stderr. ``--print`` prints a shell
script instead: the command, then the spec as a comment.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from .errors import ServeError

LLAMA_CPP_STRUCTURED_HINT = (
    "llama_cpp.server takes response_format json_object + schema (not json_schema); the openai backend "
    "switches to it on the first refusal, or set backends.openai_structured = \"json_object\" up front"
)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve an exported model with Ollama, vLLM or llama-cpp-python's server")
    kinds = p.add_subparsers(dest="serve_command", required=True, metavar="{ollama,vllm,llama-server}")
    ls = kinds.add_parser("llama-server", help="python -m llama_cpp.server with the GGUF + mmproj")
    _common(ls, port=True)
    ls.add_argument("--n-ctx", type=int, default=None, help="context size (default serving.max_model_len)")
    vl = kinds.add_parser("vllm", help="vllm serve on the export's merged/ checkpoint (CUDA)")
    _common(vl, port=True)
    ol = kinds.add_parser("ollama", help="create the model in a running Ollama from the Modelfile")
    ol.add_argument("export", type=Path, metavar="EXPORT", help="folder written by `alphasignal export`")
    ol.add_argument("--name", help="Ollama model name (default: the export's name)")
    ol.add_argument("--host", default=None, metavar="URL", help="Ollama server (default backends.ollama_host)")
    ol.add_argument("--print", dest="print_only", action="store_true", help="print the ollama create command")
    ol.add_argument("--config", type=Path, metavar="TOML", help="settings file (default ./alphasignal.toml)")


def _common(p: argparse.ArgumentParser, port: bool) -> None:
    p.add_argument("export", type=Path, metavar="EXPORT", help="folder written by `alphasignal export`")
    p.add_argument("--host", default=None, help="listen address (default serving.host, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="listen port (default serving.port; 0: any free port)")
    p.add_argument("--print", dest="print_only", action="store_true", help="print the command, do not start it")
    p.add_argument("--detach", action="store_true", help="leave the server running in the background and return")
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="seconds to wait until healthy")
    p.add_argument("--config", type=Path, metavar="TOML", help="settings file (default ./alphasignal.toml)")


def run(args: argparse.Namespace) -> int:
    from .config import load_settings
    from .finetune.serve import read_export

    settings = load_settings(getattr(args, "config", None))
    export = read_export(args.export)
    handler = {"llama-server": _llama_server, "vllm": _vllm, "ollama": _ollama}[args.serve_command]
    return handler(args, settings, export)


def _where(args: argparse.Namespace, settings: Any) -> tuple[str, int]:
    from .finetune.serve import free_port

    host = args.host or settings.serving.host
    port = settings.serving.port if args.port is None else args.port
    if port == 0:
        port = free_port("127.0.0.1" if host in ("0.0.0.0", "") else host)
    return host, port


def _llama_server(args: argparse.Namespace, settings: Any, export: Any) -> int:
    from .finetune.serve import HEALTH_TIMEOUT_S, llama_server_command, openai_spec

    host, port = _where(args, settings)
    command = llama_server_command(export, host, port, args.n_ctx or settings.serving.max_model_len)
    spec = openai_spec(export.name, host, port)
    if args.print_only:
        return _print_script(command, spec, LLAMA_CPP_STRUCTURED_HINT)
    missing = [m for m in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette") if importlib.util.find_spec(m) is None]
    if missing:
        raise ServeError(
            f"llama-cpp-python's server is not installed (missing {', '.join(missing)}): "
            "pip install 'llama-cpp-python[server]', or use --print"
        )
    return _serve(command, spec, host, port, args.timeout or HEALTH_TIMEOUT_S, args.detach, LLAMA_CPP_STRUCTURED_HINT)


def _vllm(args: argparse.Namespace, settings: Any, export: Any) -> int:
    from .finetune.serve import openai_spec, vllm_command, vllm_executable

    host, port = _where(args, settings)
    serving = settings.serving
    executable = vllm_executable()
    command = vllm_command(
        export, host, port, serving.max_model_len, serving.gpu_memory_utilization, executable or "vllm"
    )
    spec = openai_spec(export.name, host, port)
    if args.print_only:
        return _print_script(["vllm", *command[1:]], spec)
    if executable is None:
        raise ServeError("vLLM is not installed here: pip install vllm on a CUDA machine, or use --print")
    return _serve(command, spec, host, port, args.timeout or 600.0, args.detach)


def _ollama(args: argparse.Namespace, settings: Any, export: Any) -> int:
    from .finetune.serve import create_ollama_model, ollama_create_command

    name = args.name or export.name
    if args.print_only:
        return _print_script(ollama_create_command(export, name), f"ollama:{name}")
    host = args.host or settings.backends.ollama_host
    print(f"creating {name!r} in Ollama at {host} from {export.modelfile} ...", file=sys.stderr)
    print(create_ollama_model(export, name, host), flush=True)
    return 0


def _print_script(command: list[str], spec: str, note: str = "") -> int:
    from .finetune.serve import shell_line

    print(shell_line(command))
    print(f"# backend spec: {spec}")
    if note:
        print(f"# {note}")
    return 0


def _serve(
    command: list[str], spec: str, host: str, port: int, timeout_s: float, detach: bool, note: str = ""
) -> int:
    from .finetune.serve import base_url, shell_line, start_and_wait

    print(f"starting: {shell_line(command)}", file=sys.stderr)
    server, seconds = start_and_wait(command, base_url(host, port), host, port, timeout_s)
    proc = server.proc
    print(f"healthy after {seconds:.1f} s (pid {proc.pid}, log {server.log_path})", file=sys.stderr)
    if note:
        print(f"note: {note}", file=sys.stderr)
    print(spec, flush=True)
    if detach:
        print(f"detached; stop it with: kill -INT {server.detach()}", file=sys.stderr)
        return 0
    print("serving; Ctrl-C to stop", file=sys.stderr)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        server.stop(keep_log=False)
        print("server stopped", file=sys.stderr)
        return 0
    raise ServeError(f"the server exited with code {code}; its log ({server.log_path}) ends: {server.tail()}")
