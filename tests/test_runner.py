"""The iteration runner end to end through ``train.main`` with toy components.

Every run here is a few dozen CPU steps of a tiny MLP; the toy task can inject NaN losses and
simulated crashes (see ``toy_components.py``).
"""
import json
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from my_affectgpt.common.errors import UserError
from PIL import Image

from my_affectgpt.common import checkpoint as ckpt
from my_affectgpt.common.dist_utils import get_rank, get_world_size, is_main_process, main_process_only
from my_affectgpt.common.logger import MetricLogger, SmoothedValue
from my_affectgpt.common.training_visualizer import TrainingVisualizer
from my_affectgpt.runners.sampling import DataStream, MixedStream, PassBatchSampler
from toy_components import SimulatedCrash, ToyDataset, ddp_worker, write_toy_config
from toy_components import run_toy_training as run_main

# Shared by the exact-resume tests: accumulation over 2 iterations and a mid-epoch checkpoint.
RESUME_RUN = dict(max_epoch=2, iters_per_epoch=8, accum_grad_iters=2, save_every_iters=4,
                  max_grad_norm=1.0, visualize_training=True)


def final_weights(out: Path, epoch: int):
    return ckpt.load_checkpoint(ckpt.checkpoint_path(out, epoch))["model"]


def losses_of(out: Path, epoch: int) -> np.ndarray:
    with np.load(out / "training_curves" / f"training_data_epoch{epoch}.npz") as data:
        assert list(data["steps"]) == list(range(len(data["steps"])))
        return data["losses"]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """Two epochs without interruption: the reference for the resume tests."""
    root = tmp_path_factory.mktemp("straight")
    out = root / "out"
    assert run_main(root, out, **RESUME_RUN) == 0
    return out


def assert_same_training(reference: Path, resumed: Path):
    np.testing.assert_array_equal(losses_of(resumed, 2), losses_of(reference, 2))
    expected, got = final_weights(reference, 2), final_weights(resumed, 2)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


# ---------------------------------------------------------------- resume


def test_resume_after_an_epoch_is_exact(straight_run, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SimulatedCrash):
        run_main(tmp_path, out, crash_at_call=10, **RESUME_RUN)  # killed in epoch 2, iteration 2
    assert ckpt.find_latest_valid(out) == ckpt.checkpoint_path(out, 1)
    capsys.readouterr()
    assert run_main(tmp_path, out, resume="auto", **RESUME_RUN) == 0
    assert "Resumed from" in capsys.readouterr().out
    assert_same_training(straight_run, out)
    log = [json.loads(line) for line in (out / "log.txt").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [1, 2]


def test_resume_from_a_mid_epoch_checkpoint_is_exact(straight_run, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SimulatedCrash):
        run_main(tmp_path, out, crash_at_call=14, **RESUME_RUN)  # after the save at epoch 2, iteration 4
    state = ckpt.load_checkpoint(ckpt.checkpoint_path(out, 2))
    assert (state["epoch"], state["iteration"], state["global_step"]) == (2, 4, 12)
    capsys.readouterr()
    assert run_main(tmp_path, out, resume="auto", **RESUME_RUN) == 0
    assert "(epoch 2, iteration 4, global step 12)" in capsys.readouterr().out
    assert_same_training(straight_run, out)


def test_resume_from_a_checkpoint_numbering_epochs_from_0_is_exact(straight_run, tmp_path, capsys):
    """A checkpoint of the earlier runner (no format_version, epochs from 0) resumes as epoch + 1."""
    out = tmp_path / "out"
    with pytest.raises(SimulatedCrash):
        run_main(tmp_path, out, crash_at_call=10, **RESUME_RUN)
    state = ckpt.load_checkpoint(ckpt.checkpoint_path(out, 1))
    del state["format_version"]
    state["epoch"] = 0
    state["visualizer"]["epochs"] -= 1
    torch.save(state, ckpt.checkpoint_path(out, 0))
    ckpt.checkpoint_path(out, 1).unlink()
    capsys.readouterr()
    assert run_main(tmp_path, out, resume="auto", **RESUME_RUN) == 0
    printed = capsys.readouterr().out
    assert "checkpoint_000000.pth was written by an earlier version of this runner, which numbered epochs from 0: " \
           "it holds epoch 1 as numbered now" in printed
    assert "Resumed from" in printed and "(epoch 1, iteration 8, global step 8)" in printed
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["checkpoint_000000.pth", "checkpoint_000002.pth"]
    assert_same_training(straight_run, out)
    with np.load(out / "training_curves" / "training_data_epoch2.npz") as data:
        assert list(data["epochs"]) == [1] * 8 + [2] * 8


def test_auto_resume_skips_a_truncated_newest_checkpoint(straight_run, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(straight_run, out)
    newest = ckpt.checkpoint_path(out, 2)
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    assert run_main(tmp_path, out, resume="auto", **RESUME_RUN) == 0
    printed = capsys.readouterr().out
    assert f"skipping unreadable checkpoint {newest}" in printed
    assert f"Resumed from {ckpt.checkpoint_path(out, 1)}" in printed
    assert ckpt.find_latest_valid(out) == newest  # epoch 2 was trained again and saved whole
    assert_same_training(straight_run, out)


def test_auto_resume_without_checkpoints_starts_fresh(tmp_path, capsys):
    assert run_main(tmp_path, tmp_path / "out", resume="auto", max_epoch=1, iters_per_epoch=2) == 0
    assert "found no checkpoint" in capsys.readouterr().out
    assert ckpt.list_checkpoints(tmp_path / "out") == [ckpt.checkpoint_path(tmp_path / "out", 1)]


def test_resume_of_a_finished_run_trains_nothing(straight_run, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(straight_run, out)
    before = (out / "log.txt").read_text()
    assert run_main(tmp_path, out, resume="auto", **RESUME_RUN) == 0
    assert "nothing to train" in capsys.readouterr().out
    assert (out / "log.txt").read_text() == before


def test_resume_from_an_explicit_unreadable_path_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "checkpoint_000003.pth"
    bad.write_bytes(b"not a checkpoint")
    assert run_main(tmp_path, tmp_path / "out", resume=str(bad), max_epoch=1, iters_per_epoch=2) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot read checkpoint {bad}")


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_contents_load_with_weights_only(straight_run):
    path = ckpt.checkpoint_path(straight_run, 2)
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert set(state["model"]) == {"mlp.0.weight", "mlp.0.bias", "mlp.1.weight", "mlp.1.bias",
                                   "mlp.4.weight", "mlp.4.bias"}  # the frozen projection is not saved
    assert (state["epoch"], state["iteration"], state["global_step"]) == (2, 8, 16)
    assert state["format_version"] == ckpt.FORMAT_VERSION
    assert state["data_streams"] == {"toy_a": {"pass": 2, "batch": 4}}  # 16 batches, 6 per pass
    assert state["lr_sched"] == "warmup_cosine_lr"
    assert "iters_per_epoch: 8" in state["config"]
    assert len(state["rng"]) == 1 and {"python", "numpy", "torch"} <= set(state["rng"][0])
    assert len(state["visualizer"]["losses"]) == 16
    assert state["optimizer"]["state"]


def test_loading_refuses_pickled_objects(tmp_path):
    path = tmp_path / "checkpoint_000000.pth"
    torch.save({"model": {}, "extra": SimulatedCrash("not a plain value")}, path)
    with pytest.raises(ckpt.CheckpointError, match="cannot read checkpoint"):
        ckpt.load_checkpoint(path)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = ckpt.checkpoint_path(tmp_path, 0)
    ckpt.save_checkpoint({"a": torch.zeros(2)}, path)

    def failing_write(_fh):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        ckpt.write_file_atomic(path, failing_write)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_000000.pth"]
    assert torch.equal(ckpt.load_checkpoint(path)["a"], torch.zeros(2))


def test_keep_last_n_prunes_older_checkpoints(tmp_path):
    out = tmp_path / "out"
    assert run_main(tmp_path, out, max_epoch=4, iters_per_epoch=2, keep_last_n=2) == 0
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["checkpoint_000003.pth", "checkpoint_000004.pth"]
    assert ckpt.prune(out, 0) == []


# ---------------------------------------------------------------- non-finite losses


def test_nonfinite_loss_stops_naming_epoch_and_step_without_saving(tmp_path, capsys):
    out = tmp_path / "out"
    code = run_main(tmp_path, out, nan_at_calls=[5], max_epoch=2, iters_per_epoch=4)
    assert code == 1
    err = capsys.readouterr().err
    assert "non-finite loss (nan) at epoch 2, iteration 1 (global step 5)" in err
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["checkpoint_000001.pth"]


def test_tolerated_nonfinite_losses_skip_updates_and_the_checkpoint_after_them(tmp_path, capsys):
    out = tmp_path / "out"
    # Calls 1 and 3 give NaN, one at a time (tolerated); call 3 is epoch 1's last: no checkpoint then.
    code = run_main(tmp_path, out, nan_at_calls=[1, 3], max_nonfinite_steps=1, max_epoch=2,
                    iters_per_epoch=4, visualize_training=True)
    assert code == 0
    printed = capsys.readouterr().out
    assert "warning: non-finite loss at epoch 1, iteration 1 (global step 1)" in printed
    assert "warning: not saving a checkpoint at epoch 1, iteration 4" in printed
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["checkpoint_000002.pth"]
    weights = final_weights(out, 2)
    assert all(torch.isfinite(w).all() for w in weights.values())
    with np.load(out / "training_curves" / "training_data_epoch2.npz") as data:
        assert list(data["steps"]) == [0, 2, 4, 5, 6, 7]


def test_consecutive_nonfinite_losses_beyond_the_tolerance_stop(tmp_path, capsys):
    code = run_main(tmp_path, tmp_path / "out", nan_at_calls=[1, 3, 4], max_nonfinite_steps=1,
                    max_epoch=1, iters_per_epoch=6)
    assert code == 1
    assert "at epoch 1, iteration 4 (global step 4), 2 consecutive iteration(s)" in capsys.readouterr().err


# ---------------------------------------------------------------- logging and outputs


LINE = re.compile(r"^Train: data epoch: \[(\d+)\]  \[\s*(\d+)/(\d+)\]  eta: \d+:\d\d:\d\d  "
                  r"lr: \d+\.\d{8}  loss: \d+\.\d{8}$")


def test_progress_lines_every_log_freq_and_at_the_last_iteration(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_main(tmp_path, out, max_epoch=1, iters_per_epoch=12, log_freq=5, tensorboard=True) == 0
    printed = capsys.readouterr().out
    matches = [LINE.match(line) for line in printed.splitlines() if line.startswith("Train: ")]
    assert all(matches), printed
    assert [(m.group(1), m.group(2), m.group(3)) for m in matches] == [
        ("1", "0", "12"), ("1", "5", "12"), ("1", "10", "12"), ("1", "11", "12")]
    assert "[ 5/12]" in printed  # padded to the width of the last index
    assert "run:\n  task: toy" in printed  # the resolved config
    assert (out / "config.yaml").read_text().count("iters_per_epoch: 12") == 1
    record = json.loads((out / "log.txt").read_text())
    assert set(record) == {"train_lr", "train_loss", "epoch"} and record["epoch"] == 1
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


def test_metric_logger_line_format(caplog):
    metrics = MetricLogger()
    metrics.add_meter("lr", SmoothedValue(window_size=1, fmt="{value:.8f}"))
    metrics.add_meter("loss", SmoothedValue(window_size=1, fmt="{value:.8f}"))
    with caplog.at_level("INFO", logger="my_affectgpt"):
        for i in metrics.log_every(range(50, 52), total=1000, log_freq=50, header="Train: data epoch: [1]"):
            metrics.update(lr=5e-5, loss=2.65583491)
    assert len(caplog.messages) == 1
    assert re.fullmatch(r"Train: data epoch: \[1\]  \[ 50/1000\]  eta: \d+:\d\d:\d\d  lr: 0\.00005000  loss: 2\.65583491",
                        caplog.messages[0]), caplog.messages[0]


def test_visualizer_writes_curves_hd_every_fifth_epoch_and_data(tmp_path):
    vis = TrainingVisualizer(tmp_path)
    for step in range(30):
        vis.record(step, lr=1e-4 * (step + 1) / 30, loss=2.0 - step / 30, epoch=step // 6 + 1)
    vis.on_epoch_end(4)
    vis.on_epoch_end(5)
    curves = tmp_path / "training_curves"
    assert sorted(p.name for p in curves.iterdir()) == [
        "training_curves_epoch4.png", "training_curves_epoch5.png", "training_curves_hd_epoch5.png",
        "training_data_epoch4.npz", "training_data_epoch5.npz"]
    assert Image.open(curves / "training_curves_epoch5.png").info["dpi"] == pytest.approx((150, 150), abs=0.1)
    assert Image.open(curves / "training_curves_hd_epoch5.png").info["dpi"] == pytest.approx((300, 300), abs=0.1)
    assert Image.open(curves / "training_curves_epoch5.png").size == (2100, 1500)
    with np.load(curves / "training_data_epoch5.npz") as data:
        assert sorted(data.files) == ["epochs", "losses", "lrs", "steps"]
        assert list(data["epochs"]) == [s // 6 + 1 for s in range(30)]

    stats = vis.statistics()
    assert stats["total_steps"] == 30 and stats["best_step"] == 29 and stats["max_lr"] == pytest.approx(1e-4)
    assert "Best Loss:             1.033333 (Step 29)" in vis.format_statistics()

    redraw = TrainingVisualizer(tmp_path / "new_plots")
    redraw.load_data(curves / "training_data_epoch5.npz")
    assert redraw.plot_and_save(suffix="_final") == tmp_path / "new_plots" / "training_curves" / "training_curves_final.png"
    restored = TrainingVisualizer(tmp_path / "x")
    restored.load_state_dict(vis.state_dict())
    assert restored.losses == vis.losses and restored.steps == vis.steps


def test_disabled_visualizer_writes_nothing(tmp_path):
    vis = TrainingVisualizer(tmp_path, enabled=False)
    vis.record(0, 1e-4, 1.0, 1)
    vis.on_epoch_end(5)
    assert vis.plot_and_save() is None and not (tmp_path / "training_curves").exists()


def test_run_writes_epoch_named_curves(straight_run):
    curves = straight_run / "training_curves"
    assert {p.name for p in curves.glob("*.png")} == {"training_curves_epoch1.png", "training_curves_epoch2.png"}


# ---------------------------------------------------------------- data streams


def test_pass_batches_partition_the_data_across_ranks_and_reshuffle():
    ranks = [list(PassBatchSampler(20, 3, num_replicas=2, rank=r, seed=1, pass_index=0)) for r in (0, 1)]
    assert [len(b) for b in ranks] == [3, 3]  # 10 indices per rank, 3 full batches
    flat = [i for batches in ranks for batch in batches for i in batch]
    assert len(flat) == len(set(flat)) == 18
    next_pass = list(PassBatchSampler(20, 3, num_replicas=2, rank=0, seed=1, pass_index=1))
    assert next_pass != ranks[0]
    assert list(PassBatchSampler(20, 3, 2, 0, seed=1, pass_index=0, start=2)) == ranks[0][2:]


def test_stream_resumes_at_any_position_with_the_same_batches():
    def stream():
        return DataStream("toy", ToyDataset(10), batch_size=3, num_replicas=1, rank=0, seed=5)

    reference = stream()
    batches = [reference.next_batch()["index"].tolist() for _ in range(8)]  # 3 per pass
    assert reference.position() == {"pass": 2, "batch": 2}
    resumed = stream()
    resumed.seek({"pass": 1, "batch": 1})
    assert [resumed.next_batch()["index"].tolist() for _ in range(4)] == batches[4:]


def test_set_epoch_reaches_fresh_workers_every_pass():
    dataset = ToyDataset(8)
    stream = DataStream("toy", dataset, batch_size=4, num_replicas=1, rank=0, seed=0, num_workers=2)
    passes = [stream.next_batch()["pass_index"].unique().tolist() for _ in range(4)]
    assert passes == [[0], [0], [1], [1]]
    assert dataset.epochs_seen == [0, 1]


def test_too_small_dataset_is_a_clear_error():
    with pytest.raises(UserError, match=r"training dataset 'toy' has 5 samples, fewer than one batch per process"):
        DataStream("toy", ToyDataset(5), batch_size=3, num_replicas=2, rank=0, seed=0)


def test_mixing_is_a_deterministic_function_of_seed_and_step():
    def mixed(seed):
        streams = [DataStream(n, ToyDataset(8), batch_size=2, num_replicas=1, rank=0, seed=0) for n in "ab"]
        return MixedStream(streams, [3.0, 1.0], seed=seed)

    picks = [mixed(1).stream_for_step(s).name for s in range(400)]
    assert picks == [mixed(1).stream_for_step(s).name for s in range(400)]
    assert picks != [mixed(2).stream_for_step(s).name for s in range(400)]
    assert 0.65 < picks.count("a") / 400 < 0.85
    reversed_order = [mixed(1).stream_for_step(s).name for s in reversed(range(400))]
    assert reversed_order[::-1] == picks


def test_runner_mixes_datasets_and_saves_every_stream_position(tmp_path):
    out = tmp_path / "out"
    datasets = {"toy_a": {"sample_ratio": 3.0}, "toy_b": {"sample_ratio": 1.0}, "toy_test": {"split": "test"}}
    assert run_main(tmp_path, out, datasets=datasets, max_epoch=1, iters_per_epoch=40) == 0
    positions = ckpt.load_checkpoint(ckpt.checkpoint_path(out, 1))["data_streams"]
    assert set(positions) == {"toy_a", "toy_b"}
    used = {name: pos["pass"] * 6 + pos["batch"] for name, pos in positions.items()}
    assert used["toy_a"] + used["toy_b"] == 40
    assert used["toy_a"] > used["toy_b"] > 0


# ---------------------------------------------------------------- errors through train.main


def test_config_error_is_one_line_with_exit_status_2(tmp_path, capsys):
    assert run_main(tmp_path, tmp_path / "out", max_epochs=2) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Did you mean 'max_epoch'?" in err[0]


def test_unknown_task_lists_the_known_ones(tmp_path, capsys):
    assert run_main(tmp_path, tmp_path / "out", task="toy_typo") == 2
    assert "unknown task 'toy_typo'; known task names:" in capsys.readouterr().err


def test_dataset_too_small_is_reported_by_train_main(tmp_path, capsys):
    assert run_main(tmp_path, tmp_path / "out", num_samples=3, batch_size_train=4) == 2
    assert "error: training dataset 'toy_a' has 3 samples" in capsys.readouterr().err


def test_mid_epoch_saves_must_fall_on_optimizer_steps(tmp_path, capsys):
    assert run_main(tmp_path, tmp_path / "out", accum_grad_iters=2, save_every_iters=3) == 2
    assert "must be a multiple of run.accum_grad_iters" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_device_without_gpu_is_a_clear_error(tmp_path, capsys):
    assert run_main(tmp_path, tmp_path / "out", device="cuda") == 2
    assert "run.device is 'cuda' but PyTorch sees no GPU; set run.device: cpu" in capsys.readouterr().err


# ---------------------------------------------------------------- distributed


def test_rank_helpers_read_torchrun_variables_before_the_process_group_exists(monkeypatch):
    @main_process_only
    def write_something():
        return "written"

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert (get_rank(), get_world_size(), is_main_process()) == (1, 2, False)
    assert write_something() is None
    monkeypatch.setenv("RANK", "0")
    assert write_something() == "written"
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(UserError, match="RANK='one' is not an integer"):
        get_rank()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # two fresh interpreters; DDP's constructor imports torch._dynamo
def test_two_process_gloo_ddp_run_keeps_ranks_identical(tmp_path):
    out = tmp_path / "out"
    cfg = write_toy_config(tmp_path / "ddp.yaml", out, max_epoch=2, iters_per_epoch=3, batch_size_train=2,
                           accum_grad_iters=2)
    torch.multiprocessing.spawn(ddp_worker, args=(2, free_port(), str(cfg), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["code"] for r in results] == [0, 0]
    for name, tensor in results[0]["state"].items():
        assert torch.equal(tensor, results[1]["state"][name]), name
    state = ckpt.load_checkpoint(ckpt.checkpoint_path(out, 2))
    assert len(state["rng"]) == 2  # each rank's RNG state, for an exact resume with 2 processes
    assert state["data_streams"] == {"toy_a": {"pass": 1, "batch": 0}}  # 6 batches = one pass of 12 per rank
