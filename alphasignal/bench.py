"""``alphasignal bench pipeline``: the speed figures quoted in the README.

1. warm latency of a builtin decision (the demo input), p50/p95 over ``--runs``;
2. cold CLI time of ``alphasignal analyze --demo --json`` in a fresh interpreter;
3. concurrency: both branches answered by a loopback OpenAI-compatible model server
   that takes ``--delay`` seconds per request; the graph's wall time divided by the
   slowest branch's is ~1.0 when the branches overlap and ~2.0 when they do not.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

CHART_REPLY = {
    "action": "BUY", "confidence": 0.7, "entry_price": 100.0, "stop_loss": 95.0,
    "take_profit": 110.0, "trend": "uptrend", "patterns": [], "reasoning": "bench",
}
NEWS_REPLY = {"sentiment": "BULLISH", "intensity": 0.6, "key_factors": ["bench"]}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.5), 2),
        "p95": round(percentile(values, 0.95), 2),
        "max": round(max(values), 2),
    }


def warm_latency(runs: int) -> dict[str, float]:
    from .agent.graph import build_agent
    from .config import Settings

    agent = build_agent(Settings())
    for _ in range(3):
        agent.invoke({"demo": True})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        decision = agent.invoke({"demo": True})
        times.append((time.perf_counter() - start) * 1000)
        if not decision.ok:
            raise RuntimeError(f"benchmark decision failed: {decision.reasons}")
    return _stats(times)


def cold_cli(runs: int) -> dict[str, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "alphasignal", "analyze", "--demo", "--json"],
            capture_output=True, text=True,
        )
        times.append((time.perf_counter() - start) * 1000)
        if proc.returncode != 0:
            raise RuntimeError(f"cold CLI run failed: {proc.stderr.strip()}")
    return _stats(times)


def bench_reply(body: dict[str, Any]) -> str:
    """A valid answer for whichever schema the request asks for."""
    return json.dumps(NEWS_REPLY if "NewsSentiment" in json.dumps(body) else CHART_REPLY)


Reply = Callable[[dict[str, Any]], str]


def _handler(delay: float, reply: Reply) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            time.sleep(delay)
            payload = json.dumps({
                "id": "bench", "object": "chat.completion", "created": 0, "model": "bench",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": reply(body)}}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140},
            }).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:  # keep the benchmark output clean
            pass

    return Handler


@contextmanager
def loopback_model_server(delay: float = 0.0, reply: Reply = bench_reply) -> Iterator[str]:
    """A loopback OpenAI-compatible chat server; ``reply(request_body)`` gives the answer text."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(delay, reply))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def concurrency(delay: float, runs: int = 5) -> dict[str, float]:
    from .agent.graph import build_agent
    from .chart.ohlc import demo_paths
    from .config import Settings

    _, _, png = demo_paths()
    with loopback_model_server(delay) as url:
        spec = f"openai:bench@{url}"
        agent = build_agent(Settings(), chart_backend=spec, news_backend=spec)
        ratios, walls, slowest = [], [], []
        for _ in range(runs + 1):
            decision = agent.invoke({"image": png, "news": ["Apple beats expectations"]})
            if not decision.ok:
                raise RuntimeError(f"concurrency run failed: {decision.reasons}")
            ms = decision.meta.latency_ms
            # the chart guard reads the image before the branches start; the overlap is what follows
            wall = ms["total"] - ms.get("chart_read", 0.0)
            walls.append(wall)
            slowest.append(max(ms["chart"], ms["news"]))
            ratios.append(wall / max(ms["chart"], ms["news"]))
        # the first run pays for client construction and imports
        return {
            "delay_ms": delay * 1000,
            "graph_wall_ms_p50": round(statistics.median(walls[1:]), 1),
            "slowest_branch_ms_p50": round(statistics.median(slowest[1:]), 1),
            "ratio_p50": round(statistics.median(ratios[1:]), 3),
            "ratio_max": round(max(ratios[1:]), 3),
        }


def run_pipeline_bench(args: Any) -> int:
    results: dict[str, Any] = {}
    print("warm builtin decisions ...", file=sys.stderr)
    results["warm_builtin_ms"] = warm_latency(args.runs)
    print("cold CLI runs ...", file=sys.stderr)
    results["cold_cli_demo_ms"] = cold_cli(args.cold_runs)
    print("branch concurrency ...", file=sys.stderr)
    results["concurrency"] = concurrency(args.delay)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    w, c, k = results["warm_builtin_ms"], results["cold_cli_demo_ms"], results["concurrency"]
    print(f"warm builtin decision : p50 {w['p50']:.1f} ms  p95 {w['p95']:.1f} ms  (n={w['n']}, target p95 <= 150 ms)")
    print(f"cold CLI --demo       : p50 {c['p50']:.0f} ms  max {c['max']:.0f} ms  (n={c['n']}, target <= 2500 ms)")
    print(
        f"concurrency           : graph {k['graph_wall_ms_p50']:.0f} ms vs slowest branch "
        f"{k['slowest_branch_ms_p50']:.0f} ms -> ratio {k['ratio_p50']:.3f} (max {k['ratio_max']:.3f}, target <= 1.1)"
    )
    return 0
