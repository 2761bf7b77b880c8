"""The iteration-based training runner (``run.runner: runner_iter``).

Training is ``run.max_epoch`` epochs, numbered from 1, of exactly ``run.iters_per_epoch``
iterations. Each iteration takes the next batch from the training data stream
(``runners/sampling.py``), sets the learning rate from the global step
``(epoch - 1) * iters_per_epoch + i``, runs ``task.train_step(model, batch)`` under autocast
when ``run.amp`` (on GPU and CPU alike) and backpropagates ``loss / accum_grad_iters``; the
optimizer steps every ``accum_grad_iters`` iterations and at the last iteration of an epoch.

A batch whose every sample was skipped (``train_step`` returns None) is not a loss: it is not
logged, plotted or averaged, and an accumulation group of only such batches updates nothing.
An epoch in which every sample was skipped stops training with :class:`AllSamplesSkippedError`.

Checkpoints (rank 0, ``checkpoint_{epoch:06d}.pth``) are written after every epoch and every
``run.save_every_iters`` iterations. They hold everything needed to continue exactly where the
run stopped: trainable weights, optimizer and grad-scaler state, the position of every data
stream, each rank's RNG states, the visualizer history and the resolved config. Ctrl-C or
SIGTERM stops after the current iteration (:mod:`my_affectgpt.runners.stop_request`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

import torch

from my_affectgpt.common import checkpoint as ckpt
from my_affectgpt.common.atomic import DiskFullError, remove_stale_temps
from my_affectgpt.common.devices import autocast, grad_scaler
from my_affectgpt.common.dist_utils import barrier, get_rank, get_world_size, is_main_process, main_process_only
from my_affectgpt.common.errors import UserError
from my_affectgpt.common.logger import MetricLogger, SmoothedValue
from my_affectgpt.common.optims import ScheduleParams, build_optimizer
from my_affectgpt.common.registry import registry
from my_affectgpt.common.training_visualizer import TrainingVisualizer
from my_affectgpt.runners.sampling import DataStream, MixedStream
from my_affectgpt.runners.stop_request import StopRequest, TrainingInterrupted

logger = logging.getLogger("my_affectgpt")

TRAIN_SPLIT = "train"


class NonFiniteLossError(RuntimeError):
    """Training stopped because the loss was NaN/inf for too many consecutive iterations."""


class AllSamplesSkippedError(UserError):
    """Every sample of an epoch was skipped, so nothing was trained."""


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Tensors anywhere inside dicts/lists/tuples moved to ``device``; everything else as is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


class TaskStep(torch.nn.Module):
    """``task.train_step(model, batch)`` as a module, so that DDP wraps the whole step.

    Returns ``(loss, trained)``. When the task has nothing to learn from (every sample of the
    batch was skipped, ``train_step`` returns None) the loss is a zero that reaches every
    trainable parameter: produced inside DDP's forward, its backward all-reduces the same
    gradient buckets as every other rank's, so the ranks stay in step.
    """

    def __init__(self, model: torch.nn.Module, task):
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, batch) -> Tuple[torch.Tensor, bool]:
        loss = self.task.train_step(self.model, batch)
        if loss is not None:
            return loss, True
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        return torch.stack([p.sum().float() for p in trainable]).sum() * 0.0, False


class Agreement(NamedTuple):
    """What every rank learns about one iteration (one all-reduce)."""

    finite: bool  # every rank's loss was finite
    trained: bool  # some rank had samples to learn from
    stop_signal: int  # a rank was asked to stop (signal number), or 0


@registry.register_runner("runner_iter")
class RunnerIter:
    def __init__(self, cfg, task, model: torch.nn.Module, datasets: Dict[str, Dict[str, Any]]):
        self.cfg = cfg
        self.run_cfg = cfg.run
        self.task = task
        self.output_dir = Path(cfg.run.output_dir)
        self.setup(model, datasets)

    # ------------------------------------------------------------------ setup
    def setup(self, model: torch.nn.Module, datasets: Dict[str, Dict[str, Any]]) -> None:
        run = self.run_cfg
        if run.save_every_iters % run.accum_grad_iters:
            raise UserError(
                f"run.save_every_iters ({run.save_every_iters}) must be a multiple of run.accum_grad_iters "
                f"({run.accum_grad_iters}) so that mid-epoch checkpoints fall on optimizer steps"
            )
        self.rank, self.world_size = get_rank(), get_world_size()
        self.is_main = is_main_process()
        self.device = torch.device("cuda", torch.cuda.current_device()) if run.device == "cuda" else torch.device("cpu")

        self.model = model.to(self.device)
        self.trainable_params = [p for p in self.model.parameters() if p.requires_grad]
        self.train_model = TaskStep(self.model, self.task)
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = torch.nn.parallel.DistributedDataParallel(self.train_model, device_ids=device_ids)

        self.optimizer = build_optimizer(self.model, run)
        self.lr_schedule = registry.get_lr_scheduler_class(run.lr_sched)
        self.schedule_params = ScheduleParams.from_run(run)
        # The same autocast path on CPU as on GPU: bf16, or fp16 with a gradient scaler.
        self.scaler = grad_scaler(self.device, run)

        self.data = self._build_data_stream(datasets)
        self.visualizer = TrainingVisualizer(self.output_dir, enabled=run.visualize_training and self.is_main,
                                             temp_tag=ckpt.TEMP_TAG)
        self.stop_request = StopRequest()

        self.start_epoch, self.start_iter = 1, 0
        self.position = (1, 0)  # (epoch, iteration) being trained, for messages
        self.last_checkpoint: Optional[Tuple[Path, int, int]] = None  # (path, epoch, iteration)
        self.nonfinite_streak = 0
        self.group_poisoned = False  # a non-finite loss was seen in the current accumulation group
        self.group_trained = False  # some rank had samples in the current accumulation group
        if self.is_main:
            self._remove_stale_temp_files()
        if run.resume_ckpt_path:
            self._resume(run.resume_ckpt_path)
        self.tb_writer = self._open_tensorboard() if run.tensorboard and self.is_main else None

    def _remove_stale_temp_files(self) -> None:
        """Delete temp files an earlier training here left when it was killed mid-write."""
        removed = sum(remove_stale_temps(folder, ckpt.TEMP_TAG)
                      for folder in (self.output_dir, self.visualizer.save_dir))
        if removed:
            logger.info(f"removed {removed} temp file(s) left in {self.output_dir} by an interrupted training")

    def _open_tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError(
                "run.tensorboard is True but the tensorboard package is not installed; "
                "pip install tensorboard, or set run.tensorboard: False"
            ) from None
        resumed_at = self._global_step(self.start_epoch, self.start_iter)
        # purge_step drops events a crashed run logged after the checkpoint we resume from.
        return SummaryWriter(log_dir=str(self.output_dir / "tensorboard"), purge_step=resumed_at or None)

    def _build_data_stream(self, datasets: Dict[str, Dict[str, Any]]) -> MixedStream:
        run = self.run_cfg
        streams, ratios = [], []
        for name, splits in datasets.items():
            if TRAIN_SPLIT not in splits:
                continue
            streams.append(DataStream(
                name, splits[TRAIN_SPLIT], batch_size=run.batch_size_train, num_replicas=self.world_size,
                rank=self.rank, seed=run.seed, num_workers=run.num_workers,
                pin_memory=self.device.type == "cuda",
            ))
            ratios.append(self.cfg.datasets[name].sample_ratio if name in self.cfg.datasets else 1.0)
        if not streams:
            built = ", ".join(f"{n} ({', '.join(s) or 'no splits'})" for n, s in datasets.items()) or "nothing"
            raise UserError(
                f"no dataset has a '{TRAIN_SPLIT}' split to train on (the task built: {built}); "
                f"set split: {TRAIN_SPLIT} in a datasets.<name> block"
            )
        return MixedStream(streams, ratios, seed=run.seed)

    def _resume(self, resume_path: str) -> None:
        if resume_path == "auto":
            found = ckpt.find_latest_valid(self.output_dir)
            if found is None:
                logger.info(f"resume_ckpt_path: auto found no checkpoint in {self.output_dir}; starting fresh")
                return
            resume_path = found
        self.load_checkpoint(resume_path)

    def _global_step(self, epoch: int, iteration: int) -> int:
        return (epoch - 1) * self.run_cfg.iters_per_epoch + iteration

    # ------------------------------------------------------------------ training
    def train(self) -> None:
        run = self.run_cfg
        if self.start_epoch > run.max_epoch:
            logger.info(f"nothing to train: the run already finished {run.max_epoch} epoch(s)")
            return
        logger.info(
            f"Start training: epochs {self.start_epoch}..{run.max_epoch} x {run.iters_per_epoch} iterations, "
            f"{self.world_size} process(es), batch {run.batch_size_train} per process, "
            f"accum_grad_iters {run.accum_grad_iters}, device {self.device}"
            + (f", AMP {run.amp_dtype}" if run.amp else "")
        )
        try:
            with self.stop_request:
                for epoch in range(self.start_epoch, run.max_epoch + 1):
                    start_iter = self.start_iter if epoch == self.start_epoch else 0
                    stats = self.train_epoch(epoch, start_iter)
                    self.save_checkpoint(epoch, run.iters_per_epoch)
                    self._log_epoch(epoch, stats)
                    self.visualizer.on_epoch_end(epoch)  # enabled on rank 0 only
                    barrier()
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside the main thread
            raise self._interruption(self.stop_request.signal or signal.SIGINT, at_once=True) from None
        finally:
            if self.tb_writer is not None:
                self.tb_writer.close()

    def train_epoch(self, epoch: int, start_iter: int = 0) -> Dict[str, float]:
        run = self.run_cfg
        self.train_model.train()
        metrics = MetricLogger(delimiter="  ")
        metrics.add_meter("lr", SmoothedValue(window_size=1, fmt="{value:.8f}"))
        metrics.add_meter("loss", SmoothedValue(window_size=1, fmt="{value:.8f}"))
        header = f"Train: data epoch: [{epoch}]"
        trained_iterations = 0
        for i in metrics.log_every(range(start_iter, run.iters_per_epoch), run.iters_per_epoch, run.log_freq, header):
            step = self._global_step(epoch, i)
            lr = self._set_lr(step)
            loss, note, trained = self.run_iteration(epoch, i, step)
            trained_iterations += trained
            metrics.update(lr=lr)
            if loss is not None:
                metrics.update(loss=loss)
                self.visualizer.record(step, lr, loss, epoch)
                self._tensorboard({"train/loss": loss, "train/lr": lr}, step)
            else:
                metrics.meters["loss"].note(note)
            done = i + 1
            if run.save_every_iters and done % run.save_every_iters == 0 and done < run.iters_per_epoch:
                self.save_checkpoint(epoch, done)
        if not trained_iterations:
            run_now = run.iters_per_epoch - start_iter
            raise AllSamplesSkippedError(
                f"every sample was skipped in epoch {epoch} ({run_now} iteration(s)): nothing was trained and no "
                f"checkpoint was written for it. The 'skipped sample' warnings above say why each one was "
                f"skipped; fix or remove those samples, or set run.on_bad_sample: error to stop at the first one "
                f"with its full error"
            )
        return {"lr": metrics.meters["lr"].value, "loss": self._mean_across_ranks(metrics.meters["loss"])}

    def run_iteration(self, epoch: int, i: int, step: int) -> Tuple[Optional[float], Optional[str], bool]:
        """One iteration: ``(loss, None, trained)``, or ``(None, why, trained)`` when this rank
        has no loss to report (every sample skipped, or non-finite: the update is skipped).
        ``trained``: whether any rank learned from this iteration's batches."""
        run = self.run_cfg
        self.position = (epoch, i)
        batch = move_to_device(self.data.next_batch(step), self.device)
        last_of_group = (i + 1) % run.accum_grad_iters == 0 or i == run.iters_per_epoch - 1
        no_sync = self.world_size > 1 and not last_of_group
        with self.train_model.no_sync() if no_sync else contextlib.nullcontext():
            with autocast(self.device, run):
                loss, trained = self.train_model(batch)
            # Backward runs even for a non-finite loss (its gradients are then discarded), so
            # every DDP rank takes part in every gradient reduction.
            self.scaler.scale(loss / run.accum_grad_iters).backward()
        value = float(loss.detach())  # the step's one host-device sync
        agreed = self._agree(math.isfinite(value), trained)
        if agreed.stop_signal:
            raise self._interruption(signal.Signals(agreed.stop_signal), at_once=False)
        if not agreed.finite:
            self._on_nonfinite_loss(value, epoch, i, step)
        else:
            self.nonfinite_streak = 0
        self.group_trained |= agreed.trained
        if last_of_group:
            self._optimizer_step()
        if not trained:
            return None, "skipped", agreed.trained
        if not agreed.finite:
            return None, f"{value} (update skipped)", agreed.trained
        return value, None, agreed.trained

    def _optimizer_step(self) -> None:
        if self.group_poisoned or not self.group_trained:
            self.group_poisoned = False
        else:
            if self.run_cfg.max_grad_norm is not None:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.trainable_params, self.run_cfg.max_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.group_trained = False
        self.optimizer.zero_grad(set_to_none=True)

    def _on_nonfinite_loss(self, value: float, epoch: int, i: int, step: int) -> None:
        self.nonfinite_streak += 1
        self.group_poisoned = True
        where = f"epoch {epoch}, iteration {i} (global step {step})"
        allowed = self.run_cfg.max_nonfinite_steps
        if self.nonfinite_streak > allowed:
            raise NonFiniteLossError(
                f"non-finite loss ({value}) at {where}, {self.nonfinite_streak} consecutive "
                f"iteration(s) (run.max_nonfinite_steps: {allowed}); training stopped without saving. "
                f"Lower run.init_lr, set run.max_grad_norm, check the data for NaN/inf features, or resume "
                f"from the last checkpoint"
            )
        logger.warning(f"non-finite loss at {where}; skipping this update ({self.nonfinite_streak}/{allowed} tolerated)")

    def _agree(self, finite: bool, trained: bool) -> Agreement:
        """Combine this iteration's flags over all ranks (they must skip or stop together)."""
        stop = int(self.stop_request.signal or 0)
        if self.world_size == 1:
            return Agreement(finite, trained, stop)
        flags = torch.tensor([0.0 if finite else 1.0, float(trained), float(stop)], device=self.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        nonfinite, any_trained, any_stop = flags.tolist()
        return Agreement(not nonfinite, bool(any_trained), int(any_stop))

    def _set_lr(self, step: int) -> float:
        lr = self.lr_schedule(step, self.schedule_params)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _mean_across_ranks(self, meter: SmoothedValue) -> float:
        totals = torch.tensor([meter.total, meter.count], dtype=torch.float64, device=self.device)
        if self.world_size > 1:
            torch.distributed.all_reduce(totals)
        return float(totals[0] / totals[1]) if totals[1] else math.nan

    def _interruption(self, sig: signal.Signals, at_once: bool) -> TrainingInterrupted:
        epoch, i = self.position
        how = "stopped at once" if at_once else "stopped"
        message = f"training interrupted by {sig.name} at epoch {epoch}, iteration {i}; {how} without saving"
        if not self.is_main:  # rank 0 names the checkpoint
            return TrainingInterrupted(message, exit_code=128 + int(sig))
        found = ckpt.find_latest_valid(self.output_dir)  # exactly what --resume auto picks
        if found is None:
            message += "; no checkpoint was written yet, so the next run starts from the beginning"
        else:
            message += f"; --resume auto continues from {found}"
            if self.last_checkpoint is not None and self.last_checkpoint[0].resolve() == found.resolve():
                message += f" ({self._describe_position(*self.last_checkpoint[1:])})"
        return TrainingInterrupted(message, exit_code=128 + int(sig))

    def _describe_position(self, epoch: int, iteration: int) -> str:
        ipe = self.run_cfg.iters_per_epoch
        return f"end of epoch {epoch}" if iteration >= ipe else f"epoch {epoch} after {iteration} of {ipe} iterations"

    # ------------------------------------------------------------------ logging
    @main_process_only
    def _log_epoch(self, epoch: int, stats: Dict[str, float]) -> None:
        record = {"train_lr": stats["lr"], "train_loss": stats["loss"], "epoch": epoch}
        log_path = self.output_dir / "log.txt"
        previous = log_path.read_bytes() if log_path.exists() else b""
        line = (json.dumps(record) + "\n").encode()
        ckpt.write_file_atomic(log_path, lambda fh: fh.write(previous + line), tag=ckpt.TEMP_TAG)
        last_step = self._global_step(epoch, self.run_cfg.iters_per_epoch) - 1
        self._tensorboard({"epoch/train_loss": stats["loss"], "epoch/train_lr": stats["lr"]}, last_step)

    def _tensorboard(self, scalars: Dict[str, float], step: int) -> None:
        if self.tb_writer is not None:
            for tag, value in scalars.items():
                self.tb_writer.add_scalar(tag, value, step)

    # ------------------------------------------------------------------ checkpoints
    def _gather_rng_states(self) -> List[Dict[str, Any]]:
        state = ckpt.capture_rng_state()
        if self.world_size == 1:
            return [state]
        gathered: List[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, state)
        return gathered

    def save_checkpoint(self, epoch: int, iteration: int) -> None:
        """Save the state after ``iteration`` iterations of ``epoch`` (all ranks must call this).

        Nothing is written right after a (tolerated) non-finite loss.
        """
        if self.nonfinite_streak:
            logger.warning(f"not saving a checkpoint at epoch {epoch}, iteration {iteration}: "
                           f"the last loss was non-finite")
            return
        rng_states = self._gather_rng_states()
        if not self.is_main:
            return
        path = ckpt.checkpoint_path(self.output_dir, epoch)
        state = {
            "format_version": ckpt.FORMAT_VERSION,
            "model": self.model.trainable_state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "lr_sched": self.run_cfg.lr_sched,
            "rng": rng_states,
            "epoch": epoch,
            "iteration": iteration,
            "iters_per_epoch": self.run_cfg.iters_per_epoch,
            "global_step": self._global_step(epoch, iteration),
            "data_streams": self.data.positions(),
            "visualizer": self.visualizer.state_dict(),
            "config": self.cfg.to_yaml(),
        }
        try:
            ckpt.save_checkpoint(state, path)
        except DiskFullError as exc:
            previous = f"the previous checkpoint ({self.last_checkpoint[0].name}) is intact" if self.last_checkpoint \
                else "no earlier checkpoint of this run exists"
            raise DiskFullError(
                f"{exc.reason} while writing {path}; free space on that disk (run.keep_last_n keeps only the "
                f"newest checkpoints) and resume with --resume auto; {previous}", reason=exc.reason
            ) from None
        self.last_checkpoint = (path, epoch, iteration)
        pruned = ckpt.prune(self.output_dir, self.run_cfg.keep_last_n)
        logger.info(f"Saved {path.name} (epoch {epoch}, iteration {iteration})"
                    + (f"; removed {', '.join(p.name for p in pruned)}" if pruned else ""))

    def load_checkpoint(self, path) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` and continue after it."""
        path = Path(path)
        state = ckpt.load_checkpoint(path)
        if "data_streams" not in state:
            raise ckpt.CheckpointError(
                f"cannot resume from {path}: it was not written by this project's training (it has no data-stream "
                f"positions or RNG states; a checkpoint of the original AffectGPT?). To start from its weights, "
                f"set model.ckpt: {path} and leave run.resume_ckpt_path unset"
            )
        if ckpt.upgrade_state(state):
            logger.warning(
                f"{path.name} was written by an earlier version of this runner, which numbered epochs from 0: "
                f"it holds epoch {state['epoch']} as numbered now. Checkpoints from here on are named by that "
                f"numbering, so the older checkpoint_*.pth files in {path.parent} are named one below their epoch"
            )
        run = self.run_cfg
        self.model.load_trainable_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler.is_enabled() and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        if state["lr_sched"] != run.lr_sched:
            logger.warning(f"{path.name} was trained with lr_sched {state['lr_sched']}; continuing with {run.lr_sched}")
        if state["iters_per_epoch"] != run.iters_per_epoch:
            logger.warning(f"{path.name} was written with iters_per_epoch {state['iters_per_epoch']}, "
                           f"now {run.iters_per_epoch}: the schedule position shifts")
        self.data.seek(state["data_streams"])
        self.visualizer.load_state_dict(state["visualizer"])
        epoch, iteration = state["epoch"], state["iteration"]
        if iteration >= run.iters_per_epoch:
            self.start_epoch, self.start_iter = epoch + 1, 0
        else:
            self.start_epoch, self.start_iter = epoch, iteration
        self.position = (self.start_epoch, self.start_iter)
        self.last_checkpoint = (path, epoch, iteration)
        # Last, so nothing above consumes random numbers after they are restored.
        rng_states = state["rng"]
        if len(rng_states) == self.world_size:
            ckpt.restore_rng_state(rng_states[self.rank])
        else:
            logger.warning(f"{path.name} was written by {len(rng_states)} process(es), this run has "
                           f"{self.world_size}: random streams continue from run.seed instead")
        logger.info(f"Resumed from {path} (epoch {epoch}, iteration {iteration}, global step {state['global_step']})")
