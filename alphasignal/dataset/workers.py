"""Render charts to PNG files, in this process or in a pool of worker processes.

Each worker keeps one ``ChartRenderer`` (one reused figure per template) for
its whole life, writes the PNGs itself and sends back only their sha256, so
the parent never holds image bytes. Workers are started with ``spawn``: no
inherited locks or threads, and the same code path on every platform.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from ..errors import OutputError
from .render import ChartData, ChartRenderer, RenderSpec

Task = list[tuple[str, ChartData]]
CHUNK = 16  # charts per task: few messages, still a smooth progress bar

_renderer: Optional[ChartRenderer] = None
_root: Optional[Path] = None
_cpu_start = 0.0


def render_all(
    charts: Iterable[tuple[str, ChartData]],
    root: Path,
    spec: RenderSpec,
    workers: int,
    on_done: Callable[[int], None] = lambda n: None,
) -> tuple[dict[str, str], list[dict]]:
    """Write every chart under ``root``; returns ({relative path: sha256}, per-task memory stats)."""
    hashes: dict[str, str] = {}
    stats: list[dict] = []
    for result, memory in _run(_chunks(charts), root, spec, workers):
        hashes.update(result)
        stats.append(memory)
        on_done(len(result))
    return hashes, stats


def _chunks(charts: Iterable[tuple[str, ChartData]]) -> Iterator[Task]:
    task: Task = []
    for item in charts:
        task.append(item)
        if len(task) == CHUNK:
            yield task
            task = []
    if task:
        yield task


def _run(tasks: Iterator[Task], root: Path, spec: RenderSpec, workers: int) -> Iterator[tuple[dict, dict]]:
    if workers <= 1:
        _init(spec, str(root))
        try:
            for task in tasks:
                yield render_task(task)
        finally:
            _shutdown()
        return
    import multiprocessing
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context(_start_method())
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(spec, str(root))) as pool:
            # a bounded number of tasks in flight: memory stays flat however many charts
            pending = set()
            for task in tasks:
                pending.add(pool.submit(render_task, task))
                if len(pending) >= 4 * workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (f.result() for f in done)
            for future in pending:
                yield future.result()
    except BrokenProcessPool as exc:
        raise OutputError(
            "a chart worker stopped unexpectedly (out of memory?): retry with fewer workers, or --workers 1 to see the error"
        ) from exc


def _start_method() -> str:
    """``spawn`` (no inherited threads or locks), unless it cannot work here.

    spawn re-runs the parent's main script in each worker; when that script is
    not a file (``python - < script.py``) it would fail, so fork where there is fork.
    """
    import multiprocessing

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if getattr(main, "__spec__", None) is None and path and not os.path.isfile(path):
        if "fork" in multiprocessing.get_all_start_methods():
            return "fork"
    return "spawn"


def _init(spec: RenderSpec, root: str) -> None:
    global _renderer, _root, _cpu_start
    _renderer, _root, _cpu_start = ChartRenderer(spec), Path(root), time.process_time()


def _shutdown() -> None:
    global _renderer
    if _renderer is not None:
        _renderer.close()
        _renderer = None


def render_task(task: Task) -> tuple[dict[str, str], dict]:
    """Render and write one chunk of charts (in a worker); returns hashes and this process's memory."""
    if _renderer is None or _root is None:
        raise RuntimeError("render_task called in a process whose renderer was not initialised")
    hashes = {}
    for rel, chart in task:
        png = _renderer.render(chart)
        target = _root / rel
        try:
            target.write_bytes(png)
        except OSError as exc:
            raise OutputError(f"cannot write chart {target}: {exc.strerror or exc}: check the --out folder") from exc
        hashes[rel] = hashlib.sha256(png).hexdigest()
    return hashes, {
        "pid": os.getpid(),
        "charts": len(task),
        "cpu_s": time.process_time() - _cpu_start,  # since the renderer started, this process
        "rss_mb": rss_mb(),
        "peak_rss_mb": peak_rss_mb(),
    }


def rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux /proc; else the peak)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MiB (0.0 where the platform does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
