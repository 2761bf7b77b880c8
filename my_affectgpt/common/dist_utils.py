"""Distributed setup from ``torchrun``'s environment, and rank helpers.

``torchrun`` (single or multi node) sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; a plain ``python train.py`` sets none of them and runs as
rank 0 of 1 without a process group. The helpers below work in both cases, and before the
process group exists they read the rank from the environment, so logging can be set up first.
"""
from __future__ import annotations

import functools
import os
import random
from dataclasses import dataclass

from my_affectgpt.common.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: str  # "cpu" or "cuda:<local_rank>"
    owns_process_group: bool = False  # init_distributed created it, so its caller destroys it

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise UserError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def _process_group_ready() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    if _process_group_ready():
        import torch.distributed as dist

        return dist.get_rank()
    return _env_int("RANK", 0)


def get_world_size() -> int:
    if _process_group_ready():
        import torch.distributed as dist

        return dist.get_world_size()
    return _env_int("WORLD_SIZE", 1)


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if _process_group_ready():
        import torch.distributed as dist

        dist.barrier()


def main_process_only(fn):
    """Run ``fn`` on rank 0 only; other ranks get None."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) if is_main_process() else None

    return wrapper


def init_distributed(device: str) -> DistInfo:
    """Join the process group ``torchrun`` describes (NCCL on GPU, gloo on CPU), if any.

    ``device`` is ``run.device``. Returns where this process runs; pass it to
    :func:`cleanup_distributed` when done.
    """
    import torch

    rank, world_size, local_rank = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0)
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                "run.device is 'cuda' but PyTorch sees no GPU; set run.device: cpu "
                "(or pass --options run.device=cpu)"
            )
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    owns_group = world_size > 1 and not _process_group_ready()
    if owns_group:
        import torch.distributed as dist

        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise UserError(f"WORLD_SIZE={world_size} but {name} is not set; launch with torchrun")
        dist.init_process_group(
            backend="nccl" if device.startswith("cuda") else "gloo", rank=rank, world_size=world_size
        )
    return DistInfo(rank, world_size, local_rank, device, owns_process_group=owns_group)


def cleanup_distributed(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if info.owns_process_group and _process_group_ready():
        import torch.distributed as dist

        dist.destroy_process_group()


def seed_everything(base_seed: int) -> int:
    """Seed python, numpy and torch with ``base_seed + rank``; return that seed."""
    import numpy as np
    import torch

    seed = base_seed + get_rank()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def contiguous_share(n_items: int, rank: int, world_size: int) -> range:
    """Rank ``rank``'s block of ``range(n_items)``: consecutive, in order, sizes differing by at
    most one, together covering every item exactly once."""
    return range(rank * n_items // world_size, (rank + 1) * n_items // world_size)


def all_gather_objects(obj) -> list:
    """Every rank's ``obj``, indexed by rank (``[obj]`` without a process group)."""
    if not _process_group_ready():
        return [obj]
    import torch.distributed as dist

    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


class MainProcessFailed(RuntimeError):
    """Raised on the other ranks when :func:`run_on_main`'s step failed on rank 0."""


def run_on_main(fn):
    """Call ``fn()`` on rank 0 while the other ranks wait, and return its result on every rank.

    A step only rank 0 may do (writing a shared file) must not leave the others waiting forever
    when it fails: a :class:`UserError` there is raised on every rank with the same message;
    any other exception keeps its traceback on rank 0 and stops the others with
    :class:`MainProcessFailed`.
    """
    if not _process_group_ready() or get_world_size() == 1:
        return fn()
    import torch.distributed as dist

    payload = [None]
    if get_rank() == 0:
        try:
            payload[0] = ("ok", fn())
        except UserError as exc:
            dist.broadcast_object_list([("user_error", str(exc))], src=0)
            raise
        except BaseException:
            dist.broadcast_object_list([("failed", None)], src=0)
            raise
    dist.broadcast_object_list(payload, src=0)
    outcome, value = payload[0]
    if outcome == "user_error":
        raise UserError(value)
    if outcome == "failed":
        raise MainProcessFailed("rank 0 failed; its traceback says why")
    return value
