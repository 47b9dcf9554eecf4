"""Cron safety: atomic replace, an exclusive lock across processes, append-only history."""

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from alphasignal.agent.cron import append_history, run_lock, save_decision, write_atomic
from alphasignal.errors import OutputError
from alphasignal.schemas import BranchFailure, DecisionMeta, TradingDecision, utcnow


def decision(ok=True):
    meta = DecisionMeta(created_at=utcnow(), alphasignal_version="t")
    if ok:
        return TradingDecision(status="ok", final_action="HOLD", final_confidence=0.5, meta=meta)
    fail = BranchFailure(branch="chart", error="BackendUnavailable", message="down")
    return TradingDecision(status="failed", final_action="ABSTAIN", final_confidence=0.0, errors=[fail], meta=meta)


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "decision.json"
    target.write_text("old")
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["decision.json"]


def test_write_atomic_failure_leaves_target_and_no_temp(tmp_path):
    target = tmp_path / "decision.json"
    target.mkdir()  # os.replace onto a directory fails after the temp file is written
    (target / "keep").write_text("old")
    with pytest.raises(OutputError, match="cannot write"):
        write_atomic(target, "new")
    assert (target / "keep").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decision.json"]


def test_write_atomic_missing_directory(tmp_path):
    with pytest.raises(OutputError, match="output directory does not exist"):
        write_atomic(tmp_path / "nope" / "d.json", "x")


def test_failed_decision_goes_to_history_but_not_the_decision_file(tmp_path):
    out = tmp_path / "decision.json"
    save_decision(decision(ok=True), out, None)
    first = out.read_text()
    save_decision(decision(ok=False), out, None)
    assert out.read_text() == first
    lines = (tmp_path / "decisions.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["ok", "failed"]


def _hold_lock(path: str, seconds: float, ready) -> None:
    with run_lock(Path(path), timeout=5):
        ready.set()
        time.sleep(seconds)


def test_lock_excludes_a_second_process(tmp_path):
    out = tmp_path / "decision.json"
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(out), 3.0, ready))
    proc.start()
    try:
        assert ready.wait(30)
        with pytest.raises(OutputError, match="another alphasignal run holds"):
            with run_lock(out, timeout=0.2):
                pass
    finally:
        proc.join(30)
    with run_lock(out, timeout=1):  # free again once the holder is gone
        pass


def _append_many(path: str, n: int) -> None:
    for _ in range(n):
        with run_lock(Path(path), timeout=30):
            append_history(Path(path + ".jsonl"), decision())


def test_overlapping_runs_never_interleave_history_lines(tmp_path):
    base = str(tmp_path / "decision.json")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(base, 25)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    lines = Path(base + ".jsonl").read_text().splitlines()
    assert len(lines) == 75
    assert all(TradingDecision.model_validate_json(line).status == "ok" for line in lines)
