"""The output folder: build beside it, then swap it in, so a dataset is never half-written.

A build writes into ``.<name>.building-<pid>`` next to ``out`` and renames it to
``out`` when done; a previous dataset at ``out`` is replaced (and restored if the
swap fails). A later build removes the staging folders of builds whose process
is gone. A folder that is not a dataset is never replaced.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import OutputError


def check_target(out: Path) -> None:
    """OutputError unless ``out`` is absent, empty, or an earlier dataset (it has a manifest)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "manifest.json").is_file())):
        raise OutputError(
            f"{out} exists and is not an alphasignal dataset: choose another --out, or remove it first"
        )


def staging_dir(out: Path) -> Path:
    """A fresh, empty staging folder beside ``out`` (with ``images/``)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_staging(out)
        staging = out.parent / f".{out.name}.building-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "images").mkdir(parents=True)
    except OSError as exc:
        raise OutputError(f"cannot create the dataset folder beside {out}: {exc.strerror or exc}: choose a writable --out") from exc
    return staging


def _remove_dead_staging(out: Path) -> None:
    """Remove what builds into ``out`` left behind when they were killed (their process is gone)."""
    for leftover in out.parent.glob(f".{out.name}.building-*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def publish(staging: Path, out: Path) -> None:
    """Move the finished dataset into place, replacing an earlier build of the same folder."""
    try:
        if not out.exists():
            staging.rename(out)
            return
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        try:
            staging.rename(out)
        except OSError:
            old.rename(out)  # put the previous dataset back
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise OutputError(f"cannot move the finished dataset to {out}: {exc.strerror or exc}") from exc
