"""Dtypes by their config names, and mixed precision as training and inference both run it.

``run.amp`` means the same on a GPU and on the CPU: the model's forward (training step or
generation) runs under ``torch.autocast`` in ``run.amp_dtype``; fp16 training also scales
its gradients. Parts of a model that keep their own precision whatever the caller does (the
AU CLIP text tower, the AU Agent) run under :func:`precision_as_placed`.
"""
from __future__ import annotations

from typing import Optional, Union

import torch

DTYPES = {
    "fp32": torch.float32, "float32": torch.float32,
    "fp16": torch.float16, "float16": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}


def resolve_dtype(dtype: Union[str, torch.dtype, None], device: Optional[torch.device] = None) -> torch.dtype:
    """A torch dtype from a dtype, a config spelling (fp32/fp16/bf16, long names) or "auto".

    ``None``/"auto": bf16 on a GPU (fp16 where bf16 is unsupported), fp32 on the CPU; the GPU
    question is asked of ``device`` when given, else of the machine.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "", "auto"):
        on_gpu = device.type == "cuda" if device is not None else torch.cuda.is_available()
        if not on_gpu:
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype '{dtype}'; use auto or one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def amp_dtype(run) -> torch.dtype:
    """The autocast dtype ``run.amp_dtype`` names."""
    return DTYPES[run.amp_dtype]


def autocast(device, run) -> torch.autocast:
    """Autocast on ``device``'s type in ``run.amp_dtype`` when ``run.amp`` is on; a disabled
    one (plain float32 / the weights' own dtypes) otherwise."""
    return torch.autocast(torch.device(device).type, dtype=amp_dtype(run), enabled=bool(run.amp))


def grad_scaler(device, run) -> torch.amp.GradScaler:
    """The gradient scaler fp16 autocast needs; a disabled (pass-through) one for bf16 or without AMP."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=bool(run.amp) and run.amp_dtype == "fp16")


def precision_as_placed(device) -> torch.autocast:
    """Autocast switched off on ``device``'s type: the modules run in the dtype they were placed in.

    For frozen helpers whose outputs must not depend on the caller's AMP setting: their
    results are cached (and compared with pre-extracted ones) across training and inference.
    """
    return torch.autocast(torch.device(device).type, enabled=False)
