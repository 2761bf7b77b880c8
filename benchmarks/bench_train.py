#!/usr/bin/env python
"""Training throughput on the demo config: data stream vs runner vs a bare PyTorch loop.

Setup (not timed): the demo assets (tiny Qwen2 + LoRA, synthetic pre-extracted features) are
built into a temporary folder with one pass of data per timed round, a copy of
``train_configs/demo.yaml`` is pointed at them, and the task builds the model and datasets and
the ``RunnerIter`` exactly as ``train.py`` does. Then, all on the same batches:

- **loader**: ``runner.data.next_batch(step)`` with no model work in between: the runner's own
  stream (same dataset, collater, ``run.num_workers``, ``run.batch_size_train``, a fresh
  DataLoader worker per pass), over two passes. The first pass's batches are kept, moved to
  the device, and the stream is rewound with ``seek``.
- **runner**: ``runner.train_epoch`` over ``run.iters_per_epoch = --steps`` iterations, the
  stream rewound before each round so it yields the same batches. Everything the runner does
  per iteration counts: fetching the batch, LR schedule, ``task.train_step``, backward,
  finiteness check, optimizer step, loss logging. Checkpoints and epoch-end plots happen
  outside ``train_epoch`` and are not timed.
- **bare loop**: ``zero_grad, forward, backward, step`` over the kept batches, AdamW from the
  same ``build_optimizer(model, run)`` (parameter groups, lr, betas, weight decay) and the
  runner's autocast setting.
- **runner, replayed batches** (diagnostic): ``train_epoch`` again with ``runner.data`` swapped
  for the kept batches, which separates the runner's own per-step cost from the stream's.
  The main process's CPU time is also printed: runner wall time beyond its CPU time is time
  spent waiting (for the DataLoader worker, or for a core the worker is using).

The loops run in rounds, rotating which goes first, after one untimed warm-up round each
(allocator, AdamW state); step times are per-loop medians and the overhead is the median of
the per-round ratios, so slow phases of a shared machine hit every loop about equally. The
main process uses ``--threads`` torch threads (default 1, see :func:`set_threads`). Prints::

    loader: X samples/s  train (runner): Y samples/s  loader/train ratio: Zx (target >= 20x)
    runner step: A ms  bare loop step: B ms  overhead: C% (target <= 5%)
    diagnostics: ...

    python benchmarks/bench_train.py [--quick] [--device cuda]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

LOADER_TARGET = 20.0
OVERHEAD_TARGET_PCT = 5.0


def write_demo_config(shipped: str, assets: Path, output_dir: Path, path: Path) -> Path:
    """A copy of a shipped demo config with its ``demo_assets/`` paths moved to ``assets``."""
    from omegaconf import OmegaConf

    text = (REPO_ROOT / shipped).read_text(encoding="utf-8").replace("demo_assets/", f"{assets}/")
    cfg = OmegaConf.create(text)
    cfg.run.output_dir = str(output_dir)
    if "inference" in cfg:
        cfg.inference.ckpt_root = str(output_dir)
    path.write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")
    return path


def quiet_libraries() -> None:
    """Keep progress lines (the runner's are still built) and deprecation notes out of the output."""
    import warnings

    from transformers.utils import logging as hf_logging

    logging.getLogger("my_affectgpt").setLevel(logging.WARNING)
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)


def set_threads(n: int) -> None:
    """Fix the main process's torch threads. On a small CPU shared with other processes,
    OpenMP threads waiting for a descheduled sibling made step times swing tenfold with 2
    threads; 1 thread is steady (DataLoader workers always use 1)."""
    import torch

    torch.set_num_threads(n)


class Timing(NamedTuple):
    wall: float  # seconds
    cpu: float  # seconds of CPU the main process used (not its DataLoader workers)


def timed(fn: Callable[[], None], device: str) -> Timing:
    """Wall and main-process CPU time of ``fn``, with the device drained before and after."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def interleaved_rounds(loops: Dict[str, Callable[[], None]], rounds: int, device: str) -> Dict[str, List[Timing]]:
    """Timings per round of each loop; one untimed warm-up round each, then ``rounds`` rounds,
    each starting with the next loop in turn."""
    names = list(loops)
    for name in names:
        loops[name]()
    times: Dict[str, List[Timing]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(timed(loops[name], device))
    return times


def build_runner(cfg):
    """Task, model, datasets and runner as ``train.py`` builds them (after its seeding)."""
    import my_affectgpt
    from my_affectgpt.common.dist_utils import seed_everything
    from my_affectgpt.common.registry import registry

    my_affectgpt.import_components()
    seed_everything(cfg.run.seed)
    task = registry.get_task_class(cfg.run.task)()
    model = task.build_model(cfg)
    datasets = task.build_datasets(cfg)
    return registry.get_runner_class(cfg.run.runner)(cfg, task, model, datasets)


def measure_loader(runner, n_batches: int, keep: int) -> tuple:
    """(seconds for ``n_batches`` of the runner's stream, its first ``keep`` batches on the device)."""
    from my_affectgpt.runners.runner_iter import move_to_device

    start_position = runner.data.positions()
    kept: List[Dict] = []
    start = time.perf_counter()
    for step in range(n_batches):
        batch = runner.data.next_batch(step)
        if step < keep:
            kept.append(batch)
    elapsed = time.perf_counter() - start
    runner.data.seek(start_position)
    return elapsed, [move_to_device(b, runner.device) for b in kept]


class ReplayStream:
    """Stands in for ``runner.data``: the kept batches, in order, already on the device."""

    def __init__(self, batches: Sequence[Dict]):
        self.batches = batches
        self.index = 0

    def next_batch(self, step: int) -> Dict:
        batch = self.batches[self.index % len(self.batches)]
        self.index += 1
        return batch


def runner_round(runner, replay: ReplayStream = None) -> Callable[[], None]:
    """One ``train_epoch`` from the start of the runner's stream (or of ``replay``)."""
    stream = runner.data
    start_position = stream.positions()
    epoch = [1]

    def one_epoch() -> None:
        if replay is None:
            stream.seek(start_position)
        else:
            replay.index = 0
            runner.data = replay
        try:
            runner.train_epoch(epoch[0], 0)
        finally:
            runner.data = stream
        epoch[0] += 1

    return one_epoch


def bare_loop(runner, batches: Sequence[Dict]) -> Callable[[], None]:
    """A plain AdamW loop over ``batches`` with the runner's optimizer and autocast settings."""
    from my_affectgpt.common.devices import autocast
    from my_affectgpt.common.optims import build_optimizer

    model = runner.model
    optimizer = build_optimizer(model, runner.run_cfg)

    def one_pass() -> None:
        model.train()
        for batch in batches:
            optimizer.zero_grad(set_to_none=True)
            with autocast(runner.device, runner.run_cfg):
                loss = model(batch)["loss"]
            loss.backward()
            optimizer.step()

    return one_pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, steps and rounds (a smoke run)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--steps", type=int, help="iterations per round, one pass of data (default 25, quick 10)")
    parser.add_argument("--rounds", type=int, help="timed rounds of each loop (default 5, quick 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the main process (default 1)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    quiet_libraries()
    steps = args.steps or (10 if args.quick else 25)
    rounds = args.rounds or (2 if args.quick else 5)

    from my_affectgpt.common.config import load_config
    from my_affectgpt.demo_assets import build_demo_assets

    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        tmp = Path(tmp)
        cfg_path = write_demo_config("train_configs/demo.yaml", tmp / "assets", tmp / "out", tmp / "train.yaml")
        cfg = load_config(cfg_path, [f"run.device={args.device}", f"run.iters_per_epoch={steps}"])
        batch_size = cfg.run.batch_size_train
        # One pass per round: each runner round, like each pass of a real run, starts a worker.
        build_demo_assets(tmp / "assets", n_train=steps * batch_size, n_test=6)
        runner = build_runner(cfg)
        loader_s, batches = measure_loader(runner, 2 * steps, keep=steps)
        times = interleaved_rounds({
            "runner": runner_round(runner),
            "bare": bare_loop(runner, batches),
            "replay": runner_round(runner, ReplayStream(batches)),
        }, rounds, args.device)

    def step_ms(name: str, field: str = "wall") -> float:
        return 1e3 * statistics.median(getattr(t, field) for t in times[name]) / steps

    def overheads(name: str) -> List[float]:
        return [100 * (t.wall / b.wall - 1) for t, b in zip(times[name], times["bare"])]

    loader_rate = 2 * steps * batch_size / loader_s
    train_rate = 1e3 * batch_size / step_ms("runner")
    print(f"loader: {loader_rate:.1f} samples/s  train (runner): {train_rate:.1f} samples/s  "
          f"loader/train ratio: {loader_rate / train_rate:.1f}x (target >= {LOADER_TARGET:.0f}x)")
    print(f"runner step: {step_ms('runner'):.1f} ms  bare loop step: {step_ms('bare'):.1f} ms  "
          f"overhead: {statistics.median(overheads('runner')):.1f}% (target <= {OVERHEAD_TARGET_PCT:.0f}%)")
    print(f"diagnostics: runner on replayed batches (no data stream) {step_ms('replay'):.1f} ms, overhead "
          f"{statistics.median(overheads('replay')):.1f}%; main-process CPU per step: runner "
          f"{step_ms('runner', 'cpu'):.1f} ms, bare {step_ms('bare', 'cpu'):.1f} ms")
    spread = overheads("runner")
    print(f"({rounds} rounds x {steps} steps, batch {batch_size}, {args.device}, {args.threads} thread(s); "
          f"runner overhead per round {min(spread):.1f}% .. {max(spread):.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
