"""Training when things go wrong: a busy run folder, skipped batches, unwritable folders, a full
disk, Ctrl-C, leftovers of a killed run; AMP on CPU; finding checkpoints by epoch.

Runs are a few CPU steps of the toy task (``toy_components.py``); the Ctrl-C test signals a real
training process.
"""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from my_affectgpt.common import atomic
from my_affectgpt.common import checkpoint as ckpt
from my_affectgpt.common.run_lock import LOCK_NAME, RunLock
from toy_components import run_toy_training, write_toy_config

REPO_ROOT = Path(__file__).resolve().parents[1]
SHORT = dict(max_epoch=1, iters_per_epoch=4)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(folder: Path, pid: int, host: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    lock.write_text(json.dumps({"pid": pid, "host": host, "started": "2025-01-01T00:00:00+00:00", "token": "x"}))
    return lock


# ---------------------------------------------------------------- one training per run folder


def test_a_second_training_into_a_busy_folder_refuses_before_writing_anything(tmp_path, capsys):
    out = tmp_path / "out"
    with RunLock(out):  # this process plays the first training
        assert run_toy_training(tmp_path, out, **SHORT) == 2
        line = one_error_line(capsys)
        assert line == (
            f"error: run.output_dir {out} is in use by another training (pid {os.getpid()} on "
            f"{socket.gethostname()}, started {json.loads((out / LOCK_NAME).read_text())['started']}); wait for it "
            f"to finish or set another run.output_dir; if no training is running there any more, delete {out / LOCK_NAME}"
        )
        assert [p.name for p in out.iterdir()] == [LOCK_NAME]
    assert not (out / LOCK_NAME).exists()
    assert run_toy_training(tmp_path, out, **SHORT) == 0
    assert not (out / LOCK_NAME).exists()  # released at the end


def test_a_lock_left_by_a_dead_process_of_this_host_is_taken_over(tmp_path, capsys):
    out = tmp_path / "out"
    pid = dead_pid()
    write_lock(out, pid, socket.gethostname())
    assert run_toy_training(tmp_path, out, **SHORT) == 0
    assert f"warning: took over {out / LOCK_NAME}: its owner (pid {pid} on {socket.gethostname()}" in capsys.readouterr().out
    assert ckpt.list_checkpoints(out) == [ckpt.checkpoint_path(out, 1)]


def test_a_lock_of_another_host_or_without_owner_is_not_taken_over(tmp_path, capsys):
    out = tmp_path / "out"
    lock = write_lock(out, dead_pid(), "another-host")
    assert run_toy_training(tmp_path, out, **SHORT) == 2
    assert "(pid " in one_error_line(capsys) and lock.exists()
    lock.write_text("")  # killed between creating the lock and writing its owner
    assert run_toy_training(tmp_path, out, **SHORT) == 2
    assert f"({lock} exists but names no owner)" in one_error_line(capsys)


def test_release_leaves_a_lock_that_is_not_its_own(tmp_path):
    lock = RunLock(tmp_path)
    lock.acquire()
    write_lock(tmp_path, os.getpid(), "another-host")  # someone replaced it meanwhile
    lock.release()
    assert (tmp_path / LOCK_NAME).exists()


# ---------------------------------------------------------------- skipped batches


def test_batches_without_samples_are_neither_losses_nor_updates(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_toy_training(tmp_path, out, skip_at_calls=[1, 2, 5], max_epoch=1, iters_per_epoch=8,
                            log_freq=1, visualize_training=True) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("Train: ")]
    assert [line.endswith("loss: skipped") for line in lines] == [i in (1, 2, 5) for i in range(8)]
    with np.load(out / "training_curves" / "training_data_epoch1.npz") as data:
        assert list(data["steps"]) == [0, 3, 4, 6, 7]
        losses = data["losses"]
    logged = json.loads((out / "log.txt").read_text())
    assert logged["train_loss"] == pytest.approx(losses.mean())
    state = ckpt.load_checkpoint(ckpt.checkpoint_path(out, 1))
    assert {int(s["step"]) for s in state["optimizer"]["state"].values()} == {5}  # 8 iterations, 3 empty


def test_an_epoch_whose_every_sample_was_skipped_stops_without_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_toy_training(tmp_path, out, skip_all=True, max_epoch=2, iters_per_epoch=4) == 2
    assert one_error_line(capsys) == (
        "error: every sample was skipped in epoch 1 (4 iteration(s)): nothing was trained and no checkpoint was "
        "written for it. The 'skipped sample' warnings above say why each one was skipped; fix or remove those "
        "samples, or set run.on_bad_sample: error to stop at the first one with its full error"
    )
    assert ckpt.list_checkpoints(out) == [] and not (out / "log.txt").exists()


# ---------------------------------------------------------------- unwritable folders, full disk


def test_a_file_where_the_run_folder_should_be_is_one_clear_error(tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    assert run_toy_training(tmp_path, blocker, **SHORT) == 2
    assert one_error_line(capsys) == (
        f"error: run.output_dir {blocker} is a file, not a folder; set run.output_dir to a folder path "
        f"(it is created if missing)"
    )
    assert run_toy_training(tmp_path, blocker / "run", **SHORT) == 2
    assert one_error_line(capsys).startswith(
        f"error: run.output_dir {blocker / 'run'} cannot be created: {blocker} is a file, not a folder;")


def test_a_run_folder_without_permission_is_one_clear_error(tmp_path, capsys, monkeypatch):
    out = tmp_path / "locked" / "out"
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):  # what a folder of another user gives (the tests may run as root)
        if Path(path) == out:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    assert run_toy_training(tmp_path, out, **SHORT) == 2
    assert one_error_line(capsys) == (
        f"error: cannot write in run.output_dir {out}: permission denied; set run.output_dir to a folder you can "
        f"write to (--options run.output_dir=PATH) or fix that folder's permissions"
    )


class FullDiskFile:
    """A file whose writes fail with ENOSPC after ``room`` bytes, as on a full disk."""

    def __init__(self, fh, room: int):
        self.fh, self.room = fh, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.fh.close()


def test_full_disk_while_saving_a_checkpoint_is_one_clear_error(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    real_open = open

    def open_on_a_filling_disk(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        return FullDiskFile(fh, room=1000) if "checkpoint_000002.pth" in str(path) else fh

    monkeypatch.setattr(atomic, "open", open_on_a_filling_disk, raising=False)
    assert run_toy_training(tmp_path, out, max_epoch=2, iters_per_epoch=4) == 2
    assert one_error_line(capsys) == (
        f"error: no space left on device while writing {out / 'checkpoint_000002.pth'}; free space on that disk "
        f"(run.keep_last_n keeps only the newest checkpoints) and resume with --resume auto; the previous "
        f"checkpoint (checkpoint_000001.pth) is intact"
    )
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint_000001.pth", "config.yaml", "log.txt"]
    monkeypatch.undo()
    assert run_toy_training(tmp_path, out, resume="auto", max_epoch=2, iters_per_epoch=4) == 0
    assert ckpt.load_checkpoint(ckpt.checkpoint_path(out, 2))["epoch"] == 2


@pytest.mark.parametrize("wrapped_by_torch", [False, True])
def test_disk_full_errors_name_the_file_and_keep_the_previous_one(tmp_path, wrapped_by_torch):
    target = tmp_path / "state.pth"
    atomic.write_file_atomic(target, lambda fh: fh.write(b"previous"))

    def write(fh):
        full = FullDiskFile(fh, room=10)
        if wrapped_by_torch:  # torch.save reports the file's OSError as a RuntimeError
            torch.save({"x": torch.zeros(1000)}, full)
        else:
            full.write(b"x" * 100)

    with pytest.raises(atomic.DiskFullError) as caught:
        atomic.write_file_atomic(target, write)
    assert str(caught.value) == (f"no space left on device while writing {target}; free space on that disk and "
                                 f"run again; the previous state.pth is intact")
    assert target.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["state.pth"]


# ---------------------------------------------------------------- leftovers of a killed run


def test_start_removes_the_temp_files_of_a_killed_training_and_nothing_else(tmp_path, capsys):
    out = tmp_path / "out"
    curves = out / "training_curves"
    curves.mkdir(parents=True)
    ours = [out / ".train.checkpoint_000003.pth.4242a1b2c3d4e5f6.tmp", out / ".train.log.txt.42abcdefabcdef.tmp",
            curves / ".train.training_curves_epoch3.png.7ffffffffffff0.tmp"]
    others = [out / ".tmp.config.yaml.42abcdefabcdef.tmp", out / ".shard0of1.x.npy.1aaaaaaaaaaaa.tmp",
              out / "notes.tmp", out / ".train.notes", curves / "mine.tmp"]
    for path in ours + others:
        path.write_bytes(b"partial")
    assert run_toy_training(tmp_path, out, **SHORT) == 0
    assert f"removed 3 temp file(s) left in {out} by an interrupted training" in capsys.readouterr().out
    assert [p.exists() for p in ours] == [False] * 3
    assert all(p.exists() for p in others)


# ---------------------------------------------------------------- Ctrl-C


def wait_for(condition, proc: subprocess.Popen, what: str, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"training exited ({proc.returncode}) before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {what} within {limit_s} s: {proc.communicate()}")
        time.sleep(0.05)


def test_ctrl_c_stops_a_training_process_cleanly_and_it_resumes(tmp_path, capsys):
    out = tmp_path / "out"
    cfg = write_toy_config(tmp_path / "long.yaml", out, max_epoch=1000, iters_per_epoch=4, log_freq=1000)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "tests" / "toy_components.py"), "--step-delay", "0.02", "--cfg-path", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    wait_for(lambda: ckpt.checkpoint_path(out, 1).exists(), proc, "first checkpoint")

    # A second training into the same folder refuses, and leaves the first one's files alone.
    config_before = (out / "config.yaml").read_text()
    assert run_toy_training(tmp_path, out, **SHORT) == 2
    assert f"is in use by another training (pid {proc.pid} on {socket.gethostname()}" in one_error_line(capsys)
    assert (out / "config.yaml").read_text() == config_before

    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stdout + stderr
    assert "warning: SIGINT received: stopping after the current iteration" in stdout
    message = stderr.strip().splitlines()[-1]
    latest = ckpt.find_latest_valid(out)
    epoch = ckpt.load_checkpoint(latest)["epoch"]
    assert message.startswith("training interrupted by SIGINT at epoch ")
    assert message.endswith(f"; stopped without saving; --resume auto continues from {latest} (end of epoch {epoch})")
    assert not (out / LOCK_NAME).exists()
    assert not [p for p in out.rglob("*.tmp")]

    assert run_toy_training(tmp_path, out, resume="auto", max_epoch=epoch + 1, iters_per_epoch=4) == 0
    assert f"Resumed from {latest} (epoch {epoch}, iteration 4" in capsys.readouterr().out
    assert ckpt.find_latest_valid(out) == ckpt.checkpoint_path(out, epoch + 1)


# ---------------------------------------------------------------- mixed precision on CPU


@pytest.mark.parametrize("amp_dtype, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_amp_on_cpu_trains_every_step_under_autocast_and_the_loss_falls(tmp_path, amp_dtype, dtype):
    out, models = tmp_path / "out", []
    assert run_toy_training(tmp_path, out, models_built=models, amp=True, amp_dtype=amp_dtype, max_epoch=2,
                            iters_per_epoch=40, init_lr=0.03, min_lr=0.003, visualize_training=True) == 0
    assert models[0].autocast_seen == [(True, dtype, dtype)] * 80
    with np.load(out / "training_curves" / "training_data_epoch2.npz") as data:
        losses = data["losses"]
    assert losses[-16:].mean() < 0.5 * losses[:16].mean()
    scaler = ckpt.load_checkpoint(ckpt.checkpoint_path(out, 2))["scaler"]
    assert ("scale" in scaler) == (amp_dtype == "fp16")  # fp16 trains with a gradient scaler


def test_amp_off_trains_in_float32(tmp_path):
    models = []
    assert run_toy_training(tmp_path, tmp_path / "out", models_built=models, amp=False, **SHORT) == 0
    assert {seen[0] for seen in models[0].autocast_seen} == {False}
    assert {seen[2] for seen in models[0].autocast_seen} == {torch.float32}


# ---------------------------------------------------------------- checkpoints by epoch


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_checkpoint_of_an_epoch_is_found_under_either_naming(tmp_path):
    touch(tmp_path, "checkpoint_000000_loss_0.000.pth", "checkpoint_000001.pth", "checkpoint_000002.pth",
          "checkpoint_000030_loss_0.602.pth", "checkpoint_best.pth", "checkpoint_000003.pth.json", "log.txt")
    assert ckpt.find_epoch_checkpoint(tmp_path, 2) == tmp_path / "checkpoint_000002.pth"
    assert ckpt.find_epoch_checkpoint(tmp_path, 30) == tmp_path / "checkpoint_000030_loss_0.602.pth"
    assert ckpt.find_last_checkpoint(tmp_path) == tmp_path / "checkpoint_000030_loss_0.602.pth"
    assert ckpt.checkpoint_epochs(tmp_path) == [0, 1, 2, 30]
    with pytest.raises(ckpt.CheckpointNotFoundError) as caught:
        ckpt.find_epoch_checkpoint(tmp_path, 5)
    assert str(caught.value) == (f"no checkpoint of epoch 5 in {tmp_path} (looked for checkpoint_000005.pth and "
                                 f"checkpoint_000005_loss_*.pth); it holds epochs 0-2, 30")

    touch(tmp_path, "checkpoint_000030.pth")
    with pytest.raises(ckpt.AmbiguousCheckpointError) as caught:
        ckpt.find_last_checkpoint(tmp_path)
    assert str(caught.value) == (f"{tmp_path} holds 2 checkpoints of epoch 30 (checkpoint_000030.pth, "
                                 f"checkpoint_000030_loss_0.602.pth); move all but one elsewhere, or name the file "
                                 f"you mean instead of the epoch")


def test_finding_checkpoints_in_an_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ckpt.CheckpointNotFoundError, match="it holds no checkpoint files"):
        ckpt.find_epoch_checkpoint(tmp_path, 1)
    with pytest.raises(ckpt.CheckpointNotFoundError, match=f"no checkpoint in {tmp_path} "):
        ckpt.find_last_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="checkpoint folder not found"):
        ckpt.find_last_checkpoint(tmp_path / "nope")


def test_original_checkpoints_in_the_run_folder_are_neither_resumed_nor_pruned(tmp_path, capsys):
    out = tmp_path / "out"
    originals = ["checkpoint_000000_loss_0.000.pth", "checkpoint_000007_loss_0.602.pth", "checkpoint_best.pth"]
    touch(out, *originals)
    assert run_toy_training(tmp_path, out, resume="auto", keep_last_n=1, max_epoch=2, iters_per_epoch=2) == 0
    assert "found no checkpoint" in capsys.readouterr().out
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["checkpoint_000002.pth"]
    assert all((out / name).exists() for name in originals)
    assert run_toy_training(tmp_path, out, resume="auto", keep_last_n=1, max_epoch=2, iters_per_epoch=2) == 0
    assert "nothing to train" in capsys.readouterr().out


def test_resuming_from_an_original_affectgpt_checkpoint_says_to_warm_start_instead(tmp_path, capsys):
    original = tmp_path / "checkpoint_000030_loss_0.602.pth"
    torch.save({"model": {}, "optimizer": {}, "config": {"run": {}}, "scaler": None, "epoch": 30}, original)
    assert run_toy_training(tmp_path, tmp_path / "out", resume=str(original), **SHORT) == 2
    assert one_error_line(capsys) == (
        f"error: cannot resume from {original}: it was not written by this project's training (it has no "
        f"data-stream positions or RNG states; a checkpoint of the original AffectGPT?). To start from its "
        f"weights, set model.ckpt: {original} and leave run.resume_ckpt_path unset"
    )
