"""Training curves: learning rate and loss per step, drawn at every epoch end.

The runner calls :meth:`TrainingVisualizer.record` every step and
:meth:`TrainingVisualizer.on_epoch_end` after every epoch (rank 0 only). Files go to
``{out_dir}/training_curves/``:

- ``training_curves_epoch{N}.png`` (150 DPI): a 2x2 figure with the learning rate against
  the step (linear and log axes), the loss per step with a 100-step moving average, and the
  mean loss per epoch with its standard deviation;
- ``training_curves_hd_epoch{N}.png`` (300 DPI) every 5th epoch (5, 10, ...);
- ``training_data_epoch{N}.npz`` with ``steps``, ``lrs``, ``losses``, ``epochs``.

``N`` is the epoch numbered from 1, as in ``checkpoint_{N:06d}.pth``: after 10 epochs there are
``training_curves_epoch1.png`` ... ``training_curves_epoch10.png``. To redraw after training::

    vis = TrainingVisualizer("output/new_plots")
    vis.load_data("output/run/training_curves/training_data_epoch10.npz")
    vis.plot_and_save(suffix="_final")

matplotlib is imported only when drawing, through its object API with the Agg canvas, so
using this class changes no global matplotlib state.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from my_affectgpt.common.atomic import DEFAULT_TAG, write_file_atomic

logger = logging.getLogger("my_affectgpt")

DPI = 150
HD_DPI = 300
HD_EVERY = 5
SMOOTH_WINDOW = 100
RECENT_WINDOW = 100


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each run of ``window`` consecutive values (``len - window + 1`` of them)."""
    window = max(1, min(window, len(values)))
    sums = np.cumsum(np.insert(values.astype(np.float64), 0, 0.0))
    return (sums[window:] - sums[:-window]) / window


class TrainingVisualizer:
    """``temp_tag`` tags the temp files of its atomic writes (see ``atomic.remove_stale_temps``)."""

    def __init__(self, out_dir: os.PathLike, enabled: bool = True, temp_tag: str = DEFAULT_TAG):
        self.enabled = enabled
        self.temp_tag = temp_tag
        self.save_dir = Path(out_dir) / "training_curves"
        self.steps: List[int] = []
        self.lrs: List[float] = []
        self.losses: List[float] = []
        self.epochs: List[int] = []

    # -- history -----------------------------------------------------------------------
    def record(self, step: int, lr: float, loss: float, epoch: int) -> None:
        if self.enabled:
            self.steps.append(int(step))
            self.lrs.append(float(lr))
            self.losses.append(float(loss))
            self.epochs.append(int(epoch))

    def _arrays(self) -> Dict[str, np.ndarray]:
        return {
            "steps": np.asarray(self.steps, dtype=np.int64),
            "lrs": np.asarray(self.lrs, dtype=np.float64),
            "losses": np.asarray(self.losses, dtype=np.float64),
            "epochs": np.asarray(self.epochs, dtype=np.int64),
        }

    def _set_arrays(self, steps, lrs, losses, epochs) -> None:
        self.steps = [int(x) for x in steps]
        self.lrs = [float(x) for x in lrs]
        self.losses = [float(x) for x in losses]
        self.epochs = [int(x) for x in epochs]

    def state_dict(self) -> Dict[str, object]:
        """The history as tensors (loadable with ``torch.load(weights_only=True)``)."""
        import torch

        return {key: torch.from_numpy(value) for key, value in self._arrays().items()}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self._set_arrays(*(np.asarray(state[key]) for key in ("steps", "lrs", "losses", "epochs")))

    def load_data(self, npz_path: os.PathLike) -> None:
        """Replace the history with a saved ``training_data_*.npz``."""
        npz_path = Path(npz_path)
        if not npz_path.is_file():
            raise FileNotFoundError(f"training data file not found: {npz_path}")
        with np.load(npz_path) as data:
            missing = [k for k in ("steps", "lrs", "losses", "epochs") if k not in data]
            if missing:
                raise ValueError(f"{npz_path}: missing arrays {', '.join(missing)}; expected a training_data_epoch*.npz")
            self._set_arrays(data["steps"], data["lrs"], data["losses"], data["epochs"])

    # -- output ------------------------------------------------------------------------
    def on_epoch_end(self, epoch: int) -> None:
        """Write this epoch's curves and data and log the statistics block."""
        if not self.enabled or not self.steps:
            return
        suffix = f"_epoch{epoch}"
        path = self.plot_and_save(suffix=suffix, hd=epoch % HD_EVERY == 0)
        self.save_data(suffix=suffix)
        logger.info(f"Training curves saved: {path}")
        logger.info(self.format_statistics())

    def save_data(self, suffix: str = "") -> Optional[Path]:
        if not self.enabled:
            return None
        path = self.save_dir / f"training_data{suffix}.npz"
        write_file_atomic(path, lambda fh: np.savez(fh, **self._arrays()), tag=self.temp_tag)
        return path

    def plot_and_save(self, suffix: str = "", hd: bool = False) -> Optional[Path]:
        """Draw ``training_curves{suffix}.png`` (and the 300-DPI ``_hd`` one when ``hd``)."""
        if not self.enabled:
            return None
        if not self.steps:
            raise ValueError("no training history to plot; record steps or load_data() first")
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        figure = self._draw()
        FigureCanvasAgg(figure)
        path = self.save_dir / f"training_curves{suffix}.png"
        write_file_atomic(path, lambda fh: figure.savefig(fh, format="png", dpi=DPI), tag=self.temp_tag)
        if hd:
            hd_path = self.save_dir / f"training_curves_hd{suffix}.png"
            write_file_atomic(hd_path, lambda fh: figure.savefig(fh, format="png", dpi=HD_DPI), tag=self.temp_tag)
        return path

    def _draw(self):
        from matplotlib.figure import Figure

        data = self._arrays()
        steps, lrs, losses, epochs = data["steps"], data["lrs"], data["losses"], data["epochs"]
        figure = Figure(figsize=(14, 10), layout="constrained")
        (ax_lr, ax_lr_log), (ax_loss, ax_epoch) = figure.subplots(2, 2)

        ax_lr.plot(steps, lrs, color="tab:blue", linewidth=1.5)
        ax_lr.set_title("Learning rate (linear)")
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))

        positive = lrs > 0
        ax_lr_log.plot(steps[positive], lrs[positive], color="tab:blue", linewidth=1.5)
        ax_lr_log.set_yscale("log")
        ax_lr_log.set_title("Learning rate (log)")

        ax_loss.plot(steps, losses, color="tab:gray", alpha=0.4, linewidth=0.8, label="loss")
        window = min(SMOOTH_WINDOW, len(losses))
        ax_loss.plot(steps[window - 1 :], moving_average(losses, window), color="tab:red",
                     linewidth=1.8, label=f"{window}-step moving average")
        ax_loss.set_title("Training loss")
        ax_loss.legend(loc="upper right")

        epoch_ids = np.unique(epochs)
        means = [losses[epochs == e].mean() for e in epoch_ids]
        stds = [losses[epochs == e].std() for e in epoch_ids]
        ax_epoch.errorbar(epoch_ids, means, yerr=stds, marker="o", color="tab:green", capsize=4, linewidth=1.5)
        ax_epoch.set_title("Mean loss per epoch (± std)")
        ax_epoch.set_xlabel("epoch")
        ax_epoch.set_xticks(epoch_ids)

        for ax in (ax_lr, ax_lr_log, ax_loss):
            ax.set_xlabel("step")
        for ax in (ax_lr, ax_lr_log):
            ax.set_ylabel("learning rate")
        for ax in (ax_loss, ax_epoch):
            ax.set_ylabel("loss")
        for ax in (ax_lr, ax_lr_log, ax_loss, ax_epoch):
            ax.grid(True, alpha=0.3)
        figure.suptitle(f"Training curves: {len(steps)} steps, epoch {epochs[-1]}", fontsize=14)
        return figure

    def statistics(self) -> Dict[str, float]:
        data = self._arrays()
        losses, lrs = data["losses"], data["lrs"]
        best = int(np.argmin(losses))
        return {
            "total_steps": len(losses),
            "epoch": int(data["epochs"][-1]),
            "current_lr": float(lrs[-1]),
            "latest_loss": float(losses[-1]),
            "recent_avg_loss": float(losses[-RECENT_WINDOW:].mean()),
            "best_loss": float(losses[best]),
            "best_step": int(data["steps"][best]),
            "max_lr": float(lrs.max()),
            "min_lr": float(lrs.min()),
        }

    def format_statistics(self) -> str:
        s = self.statistics()
        rule = "=" * 70
        return "\n".join([
            rule,
            "Training Statistics",
            rule,
            f"  Total Steps:           {s['total_steps']:,}",
            f"  Current Epoch:         {s['epoch']}",
            f"  Current Learning Rate: {s['current_lr']:.2e}",
            f"  Latest Loss:           {s['latest_loss']:.6f}",
            f"  {f'Recent {RECENT_WINDOW} Avg Loss:':<22} {s['recent_avg_loss']:.6f}",
            f"  Best Loss:             {s['best_loss']:.6f} (Step {s['best_step']})",
            f"  Max Learning Rate:     {s['max_lr']:.2e}",
            f"  Min Learning Rate:     {s['min_lr']:.2e}",
            rule,
        ])
