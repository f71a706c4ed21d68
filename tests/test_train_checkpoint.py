"""Checkpoints: atomic pairs, torn or corrupt ones skipped, pruning, RNG states, held signals."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.runs.records import list_checkpoints
from experiments.train import checkpoint as ckpt
from experiments.train.signals import DeferredSignals


def _payload(value: float) -> dict:
    return {
        "model": {"w": torch.full((3, 3), value)},
        "state": {"global_step": int(value)},
    }


def test_save_and_load_latest(tmp_path: Path) -> None:
    for step in (1, 2, 3):
        path = ckpt.save(tmp_path, step, _payload(step), {"reason": "test"})
        assert path.name == f"ckpt_{step:09d}.pt" and path.with_suffix(".json").exists()
    payload, path = ckpt.load_latest(tmp_path)
    assert path.name == "ckpt_000000003.pt" and payload["model"]["w"][0, 0] == 3
    assert not list(tmp_path.glob(".ckpt.*"))  # no temporary files left behind
    ckpt.prune(tmp_path, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "ckpt_000000003.pt",
        "ckpt_000000002.pt",
    ]
    assert len(list(tmp_path.glob("*.json"))) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_meta"])
def test_torn_or_corrupt_checkpoint_falls_back(tmp_path: Path, damage: str) -> None:
    ckpt.save(tmp_path, 1, _payload(1), {})
    newest = ckpt.save(tmp_path, 2, _payload(2), {})
    data = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        newest.write_bytes(data[:-40] + bytes([data[-40] ^ 0xFF]) + data[-39:])
    else:
        newest.with_suffix(".json").unlink()
    messages: list[str] = []
    payload, path = ckpt.load_latest(tmp_path, log=messages.append)
    assert path.name == "ckpt_000000001.pt" and payload["state"]["global_step"] == 1
    assert len(messages) == 1 and "ckpt_000000002.pt is unusable" in messages[0]


def test_prune_keeps_valid_checkpoints_and_deletes_unusable_ones(
    tmp_path: Path,
) -> None:
    # A torn newest checkpoint (6); resume falls back to 4; the run saves 5 and prunes.
    for step in (2, 4, 6):
        ckpt.save(tmp_path, step, _payload(step), {})
    torn = list_checkpoints(tmp_path)[0]
    written = len(torn.read_bytes())
    torn.write_bytes(torn.read_bytes()[:100])
    payload, resumed = ckpt.load_latest(tmp_path, log=lambda m: None)
    assert payload["state"]["global_step"] == 4
    saved = ckpt.save(tmp_path, 5, _payload(5), {})
    said: list[str] = []
    ckpt.prune(tmp_path, keep=2, trusted={resumed, saved}, log=said.append)
    assert [p.name for p in list_checkpoints(tmp_path)] == [saved.name, resumed.name]
    reason = f"100 bytes on disk, {written} written (torn write)"
    assert said == [f"deleted unusable checkpoint {torn.name} ({reason})"]
    assert not torn.with_suffix(".json").exists()
    ckpt.prune(tmp_path, keep=1, log=said.append)  # nothing trusted: checked by hash
    assert [p.name for p in list_checkpoints(tmp_path)] == [saved.name]
    # A valid pair that fails its hash counts as unusable too, and a valid older one stays.
    ckpt.save(tmp_path, 7, _payload(7), {})
    newest = list_checkpoints(tmp_path)[0]
    data = newest.read_bytes()
    newest.write_bytes(data[:-40] + bytes([data[-40] ^ 0xFF]) + data[-39:])
    ckpt.prune(tmp_path, keep=1, log=said.append)
    assert [p.name for p in list_checkpoints(tmp_path)] == [saved.name]
    assert "SHA-256 differs" in said[-1]


def test_no_checkpoint_is_none(tmp_path: Path) -> None:
    assert ckpt.load_latest(tmp_path / "absent") is None
    ckpt.save(tmp_path, 1, _payload(1), {})
    ckpt.remove_all(tmp_path)
    assert ckpt.load_latest(tmp_path) is None and not tmp_path.exists()


def test_rng_state_round_trips_through_a_weights_only_checkpoint(
    tmp_path: Path,
) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    ckpt.save(tmp_path, 1, {"rng": ckpt.rng_state()}, {})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    payload, _ = ckpt.load_latest(tmp_path)
    ckpt.set_rng_state(payload["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def _one_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake a machine with one visible GPU, whose CUDA generator calls are counted."""

    def set_all(states: list) -> None:
        for device, _ in enumerate(states):
            if device >= 1:
                raise IndexError("list index out of range")  # as torch with fewer devices

    def get_all() -> list:
        raise AssertionError("the CUDA generators' states are not saved")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", set_all)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", get_all)


def test_a_checkpoint_of_two_gpus_restores_where_one_is_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = ckpt.rng_state()
    state["cuda"] = [torch.zeros(16, dtype=torch.uint8)] * 2  # written by a 2-GPU rank
    ckpt.save(tmp_path, 1, {"rng": state}, {})
    payload, _ = ckpt.load_latest(tmp_path)
    _one_gpu(monkeypatch)
    ckpt.set_rng_state(payload["rng"])  # no IndexError: reseeding makes them useless
    assert "cuda" not in ckpt.rng_state()


def _agree(rank: int, folder: str, store: str, out: str) -> None:
    """One of 2 gloo ranks: load_agreed, counting the files this rank hashes."""
    import torch.distributed as dist

    from experiments.train.distributed import RankContext

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    hashed = []
    sha = ckpt._sha256
    ckpt._sha256 = lambda path: hashed.append(path.name) or sha(path)
    ctx = RankContext(rank, 2, torch.device("cpu"), torch.float32, False, True)
    payload, path = ckpt.load_agreed(folder, ctx.main, ctx.from_main, log=lambda m: None)
    step = payload["state"]["global_step"]
    Path(out, f"{rank}.txt").write_text(f"{path.name} {step} {','.join(hashed)}")
    ctx.close()


def test_rank_0_alone_verifies_and_every_rank_loads_its_choice(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    for step in (1, 2):
        ckpt.save(folder, step, _payload(step), {})
    newest = list_checkpoints(folder)[0]
    newest.write_bytes(newest.read_bytes()[:-1] + b"x")  # corrupted: rank 0 falls back
    torch.multiprocessing.spawn(_agree, args=(str(folder), str(tmp_path / "store"),
                                              str(tmp_path)), nprocs=2)  # fmt: skip
    first = "ckpt_000000001.pt"
    assert (tmp_path / "0.txt").read_text() == f"{first} 1 ckpt_000000002.pt,{first}"
    assert (tmp_path / "1.txt").read_text() == f"{first} 1 "  # hashed nothing


def test_seed_step_depends_on_seed_rank_and_step() -> None:
    draws = {}
    for key in [(0, 0, 5), (0, 0, 5), (1, 0, 5), (0, 1, 5), (0, 0, 6)]:
        ckpt.seed_step(*key)
        draws.setdefault(key, []).append((random.random(), np.random.rand(), torch.rand(1).item()))
    assert draws[(0, 0, 5)][0] == draws[(0, 0, 5)][1]
    assert len({d[0] for d in draws.values()}) == 4


def test_deferred_signals_wait_for_the_critical_section() -> None:
    calls: list[str] = []
    previous = signal.signal(signal.SIGUSR2, lambda s, f: calls.append("handler"))
    deferred = DeferredSignals((signal.SIGUSR2,))
    deferred.install()
    try:
        with deferred.critical():
            os.kill(os.getpid(), signal.SIGUSR2)
            calls.append("step done")
        calls.append("after")
        os.kill(os.getpid(), signal.SIGUSR2)  # outside: handled at once
        calls.append("end")
    finally:
        deferred.uninstall()
        restored = signal.getsignal(signal.SIGUSR2)
        signal.signal(signal.SIGUSR2, previous)
    assert calls == ["step done", "handler", "after", "handler", "end"]
    assert restored is not deferred._handle


def test_deferred_signals_are_dropped_when_the_step_raises() -> None:
    calls: list[str] = []
    previous = signal.signal(signal.SIGUSR2, lambda s, f: calls.append("handler"))
    deferred = DeferredSignals((signal.SIGUSR2,))
    deferred.install()
    try:
        with pytest.raises(RuntimeError), deferred.critical():
            os.kill(os.getpid(), signal.SIGUSR2)
            raise RuntimeError("half-done step")
        with deferred.critical():
            calls.append("next step")
    finally:
        deferred.uninstall()
        signal.signal(signal.SIGUSR2, previous)
    assert calls == ["next step"]  # no checkpoint of a half-updated state


def test_held_signals_run_only_when_released() -> None:
    # Several ranks: a signal waits, inside or outside a step, until the ranks agree.
    calls: list[str] = []
    previous = signal.signal(signal.SIGUSR2, lambda s, f: calls.append("handler"))
    deferred = DeferredSignals((signal.SIGUSR2,), hold=True)
    deferred.install()
    try:
        with deferred.critical():
            os.kill(os.getpid(), signal.SIGUSR2)
        calls.append("step done")
        os.kill(os.getpid(), signal.SIGUSR2)  # between steps: held as well
        calls.append("between steps")
        assert deferred.pending
        deferred.release()
        assert not deferred.pending
    finally:
        deferred.uninstall()
        signal.signal(signal.SIGUSR2, previous)
    assert calls == ["step done", "between steps", "handler", "handler"]
