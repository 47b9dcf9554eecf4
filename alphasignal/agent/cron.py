"""Cron-safe output: an exclusive lock, an atomic decision file, an append-only history.

* ``run_lock(path)`` — one run at a time per output file (``<output>.lock``); a second run
  waits up to ``timeout`` seconds, then fails with ``OutputError``.
* ``write_atomic(path, text)`` — temp file in the same directory, fsync, ``os.replace``,
  fsync of the directory: readers see the old file or the new one, never half of either.
* ``append_history(path, decision)`` — one JSON line per decision, fsync'd; failed
  decisions are recorded too (the decision file itself is left untouched by a failure).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Optional

from ..errors import OutputError
from ..schemas import TradingDecision


@contextlib.contextmanager
def run_lock(output: Path, timeout: float) -> Iterator[None]:
    from filelock import FileLock, Timeout

    lock_path = Path(f"{output}.lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_path), timeout=timeout)
        with lock:
            yield
    except Timeout:
        raise OutputError(
            f"another alphasignal run holds {lock_path} (waited {timeout:g} s); "
            "raise pipeline.lock_timeout_s or space the cron runs further apart"
        ) from None
    except PermissionError as exc:
        raise OutputError(f"cannot create lock file {lock_path}: {exc.strerror}") from None


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically; on any error the old file is untouched."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise OutputError(f"output directory does not exist: {directory}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    _fsync_dir(directory)


def append_history(path: Path, decision: TradingDecision) -> None:
    line = decision.model_dump_json() + "\n"
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise OutputError(f"cannot append to history {path}: {exc.strerror or exc}") from None


def history_path(output: Path, configured: Optional[Path]) -> Path:
    return configured if configured is not None else Path(output).with_name("decisions.jsonl")


def save_decision(decision: TradingDecision, output: Path, history: Optional[Path]) -> None:
    """Record a decision: history always, the decision file only when the decision is ok."""
    append_history(history_path(output, history), decision)
    if decision.ok:
        write_atomic(Path(output), decision.model_dump_json(indent=2) + "\n")
