"""Mixed precision as training and inference both run it.

``run.amp`` means the same on a GPU and on the CPU: the model's forward (training step or
generation) runs under ``torch.autocast`` in ``run.amp_dtype``; fp16 training also scales
its gradients. Parts of a model that keep their own precision whatever the caller does (the
AU CLIP text tower, the AU Agent) run under :func:`precision_as_placed`.
"""
from __future__ import annotations

import torch

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(run) -> torch.dtype:
    """The autocast dtype ``run.amp_dtype`` names."""
    return AMP_DTYPES[run.amp_dtype]


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
