"""A toy model, dataset and task for runner tests (and anyone else who needs a fast loop).

Register them into a child registry, never the global one::

    reg = registry.child()
    register_toy_components(reg)                     # task "toy"
    train.main(["--cfg-path", str(cfg)], registry=reg)

``write_toy_config`` writes a small YAML that runs on CPU in well under a second per epoch.
The model has dropout, so a resumed run only matches an uninterrupted one when the RNG
state is restored; samples are dicts and the dataset has ``collater`` and ``set_epoch``.

Run as a script, this file is ``train.py`` with the toy components registered (for tests
that need a real training process to send signals to)::

    python tests/toy_components.py [--step-delay SECONDS] --cfg-path toy.yaml [train.py options]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from omegaconf import OmegaConf
from torch import nn

TOY_DIM = 8


class ToyDataset(torch.utils.data.Dataset):
    """``num_samples`` fixed samples: ``x`` [TOY_DIM] and a target ``y`` from a fixed linear map.

    Each sample also carries the pass index last given to ``set_epoch``, so tests can see
    whether it reached the DataLoader workers.
    """

    def __init__(self, num_samples: int = 24, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(num_samples, TOY_DIM, generator=generator)
        weights = torch.randn(TOY_DIM, 1, generator=generator)
        self.y = self.x @ weights
        self.pass_index = 0
        self.epochs_seen: List[int] = []

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> Dict[str, object]:
        return {"name": f"sample{index:04d}", "index": index, "pass_index": self.pass_index,
                "x": self.x[index], "y": self.y[index]}

    def set_epoch(self, pass_index: int) -> None:
        self.pass_index = pass_index
        self.epochs_seen.append(pass_index)

    @staticmethod
    def collater(samples: List[Dict[str, object]]) -> Dict[str, object]:
        return {
            "names": [s["name"] for s in samples],
            "index": torch.tensor([s["index"] for s in samples]),
            "pass_index": torch.tensor([s["pass_index"] for s in samples]),
            "x": torch.stack([s["x"] for s in samples]),
            "y": torch.stack([s["y"] for s in samples]),
        }


class ToyModel(nn.Module):
    """A frozen input projection, then a small MLP with LayerNorm and dropout; MSE loss.

    ``autocast_seen`` records, for every forward, whether autocast was on for the input's
    device, its dtype, and the dtype the first linear layer computed in.
    """

    def __init__(self):
        super().__init__()
        self.frozen_proj = nn.Linear(TOY_DIM, TOY_DIM)
        self.frozen_proj.requires_grad_(False)
        self.mlp = nn.Sequential(
            nn.Linear(TOY_DIM, 16), nn.LayerNorm(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1)
        )
        self.autocast_seen: List[Tuple[bool, torch.dtype, torch.dtype]] = []

    def forward(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        device = batch["x"].device.type
        hidden = self.mlp[0](self.frozen_proj(batch["x"]))
        self.autocast_seen.append((torch.is_autocast_enabled(device), torch.get_autocast_dtype(device), hidden.dtype))
        prediction = self.mlp[1:](hidden)
        return {"loss": nn.functional.mse_loss(prediction.float(), batch["y"])}

    def trainable_state_dict(self) -> Dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state_dict(self, state_dict: Dict[str, torch.Tensor]) -> None:
        expected = set(self.trainable_state_dict())
        if set(state_dict) != expected:
            raise ValueError(f"toy checkpoint keys {sorted(state_dict)} are not the trainable {sorted(expected)}")
        self.load_state_dict(state_dict, strict=False)


class SimulatedCrash(RuntimeError):
    """Raised by a toy task to stand in for a killed training process."""


class ToyTask:
    """Builds :class:`ToyModel` and one :class:`ToyDataset` per ``datasets`` block.

    Class attributes (override in a subclass, see :func:`register_toy_components`):
    ``num_samples`` per dataset; ``nan_at_calls``: train_step call numbers (0-based, counted
    per task instance) whose loss is NaN; ``skip_at_calls``: calls whose every sample counts
    as skipped (train_step returns None); ``skip_all``: every call is skipped;
    ``crash_at_call``: the call that raises :class:`SimulatedCrash`; ``step_delay``: seconds
    each call sleeps; ``models_built``: a list that receives every model built.
    """

    num_samples = 24
    nan_at_calls: Iterable[int] = ()
    skip_at_calls: Iterable[int] = ()
    skip_all = False
    crash_at_call: Optional[int] = None
    step_delay = 0.0
    models_built: Optional[List[ToyModel]] = None

    def __init__(self):
        self.calls = 0
        self.model: Optional[ToyModel] = None
        self.datasets: Dict[str, Dict[str, ToyDataset]] = {}

    def build_model(self, cfg) -> ToyModel:
        self.model = ToyModel()
        if self.models_built is not None:
            self.models_built.append(self.model)
        return self.model

    def build_datasets(self, cfg) -> Dict[str, Dict[str, ToyDataset]]:
        self.datasets = {
            name: {block.split: ToyDataset(self.num_samples, seed=seed)}
            for seed, (name, block) in enumerate(cfg.datasets.items())
        }
        return self.datasets

    def train_step(self, model, batch) -> Optional[torch.Tensor]:
        call, self.calls = self.calls, self.calls + 1
        time.sleep(self.step_delay)
        if call == self.crash_at_call:
            raise SimulatedCrash(f"simulated crash at train_step call {call}")
        if self.skip_all or call in set(self.skip_at_calls):
            return None
        loss = model(batch)["loss"]
        return loss * float("nan") if call in set(self.nan_at_calls) else loss


def register_toy_components(reg, task_name: str = "toy", **task_attrs) -> type:
    """Register a ToyTask subclass with ``task_attrs`` as ``task_name`` in ``reg``; return it."""
    task_cls = type(f"ToyTask_{task_name}", (ToyTask,), dict(task_attrs))
    reg.register_task(task_name)(task_cls)
    return task_cls


TOY_TASK_KEYS = ("num_samples", "nan_at_calls", "skip_at_calls", "skip_all", "crash_at_call", "step_delay",
                 "models_built")


def run_toy_training(cfg_dir: Path, output_dir: Path, resume: Optional[str] = None,
                     datasets: Optional[Dict[str, dict]] = None, **keys) -> int:
    """Write a toy config into ``cfg_dir`` and run ``train.main`` on it; returns its exit status.

    Keys named in :data:`TOY_TASK_KEYS` go to the toy task, the others to the ``run`` section.
    """
    import train
    from my_affectgpt.common.registry import registry

    task_attrs = {k: keys.pop(k) for k in list(keys) if k in TOY_TASK_KEYS}
    reg = registry.child()
    register_toy_components(reg, **task_attrs)
    cfg = write_toy_config(Path(cfg_dir) / f"{Path(output_dir).name}.yaml", output_dir, datasets=datasets, **keys)
    return train.main(["--cfg-path", str(cfg)] + (["--resume", resume] if resume else []), registry=reg)


def write_toy_config(path: Path, output_dir: Path, datasets: Optional[Dict[str, dict]] = None, **run) -> Path:
    """A toy training YAML; ``run`` keys override the small defaults below."""
    run_section = {
        "task": "toy",
        "device": "cpu",
        "output_dir": str(output_dir),
        "lr_sched": "warmup_cosine_lr",
        "init_lr": 0.01,
        "min_lr": 0.001,
        "warmup_lr": 0.0001,
        "warmup_steps": 3,
        "max_epoch": 2,
        "iters_per_epoch": 8,
        "batch_size_train": 4,
        "num_workers": 0,
        "log_freq": 4,
        "visualize_training": False,
        "seed": 7,
    }
    run_section.update(run)
    datasets = datasets or {"toy_a": {}}
    config = {
        "model": {"arch": "toy"},
        "datasets": {name: {"face_or_frame": "textonly", **block} for name, block in datasets.items()},
        "run": run_section,
    }
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
    return path


def ddp_worker(rank: int, world_size: int, port: int, cfg_path: str, result_dir: str) -> None:
    """Entry point of one process of a CPU (gloo) DDP test run started by torch.multiprocessing."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    import train
    from my_affectgpt.common.registry import registry

    reg = registry.child()
    built = []

    class RecordingToyTask(ToyTask):
        skip_at_calls = (0, 1) if rank == 1 else ()  # rank 1 has no sample in its first accumulation group

        def build_model(self, cfg):
            built.append(super().build_model(cfg))
            return built[-1]

    reg.register_task("toy")(RecordingToyTask)
    code = train.main(["--cfg-path", cfg_path], registry=reg)
    torch.save({"code": code, "state": built[0].state_dict()}, Path(result_dir) / f"rank{rank}.pt")


def main(argv=None) -> int:
    """``train.main`` with the toy components registered; ``--step-delay`` slows every step."""
    parser = argparse.ArgumentParser(description="train.py with the toy task registered")
    parser.add_argument("--step-delay", type=float, default=0.0)
    args, train_argv = parser.parse_known_args(argv)
    import train
    from my_affectgpt.common.registry import registry

    reg = registry.child()
    register_toy_components(reg, step_delay=args.step_delay)
    return train.main(train_argv, registry=reg)


if __name__ == "__main__":
    sys.exit(main())
