"""Batch samples that follow the contract in docs/ARCHITECTURE.md."""
from __future__ import annotations

from typing import Dict, List

import torch

# Per-sample matrices whose row count varies (AU: one row per described frame).
VARIABLE_ROWS = ("au",)


def collate(samples: List[Dict]) -> Dict:
    """Stack tensors, pad variable-row ones with a ``<key>_mask``, keep the rest as lists.

    Samples a dataset skipped under ``run.on_bad_sample: skip`` arrive as ``{"skipped": why}``;
    they are dropped here and listed in ``batch["skipped"]``. Samples that failed inside a
    DataLoader worker arrive as ``{"failed": error}``: the batch then carries only
    ``batch["failed"]``, for :func:`raise_failed` in the main process.
    """
    failed = [s["failed"] for s in samples if "failed" in s]
    if failed:
        return {"failed": failed}
    skipped = [s["skipped"] for s in samples if "skipped" in s]
    samples = [s for s in samples if "skipped" not in s]
    batch: Dict = {"skipped": skipped, "names": [s["name"] for s in samples]}
    if not samples:
        return batch
    for key in samples[0]:
        if key == "name":
            continue
        values = [s[key] for s in samples]
        if key in VARIABLE_ROWS:
            batch[key], batch[f"{key}_mask"] = pad_rows(values)
        elif isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        elif key == "max_length":
            batch[key] = min(values)
        else:
            batch[key] = values
    return batch


def pad_rows(values: List[torch.Tensor]):
    """[N_i, D] tensors -> ([B, max N, D] zero-padded, [B, max N] bool mask of real rows)."""
    longest = max(v.shape[0] for v in values)
    padded = values[0].new_zeros((len(values), longest) + tuple(values[0].shape[1:]))
    mask = torch.zeros(len(values), longest, dtype=torch.bool)
    for i, v in enumerate(values):
        padded[i, : v.shape[0]] = v
        mask[i, : v.shape[0]] = True
    return padded, mask


def raise_failed(batch: Dict) -> Dict:
    """Raise the first sample error a DataLoader worker passed on in ``batch``; else ``batch``."""
    for error in batch.get("failed", ()):
        raise error
    return batch
