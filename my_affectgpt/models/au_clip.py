"""The realtime AU text encoder: the text tower of an open_clip model (CLIP ViT-B/32 in production).

AU ``summary_description`` texts become L2-normalised text features (512 wide for ViT-B/32),
the same vectors the AU feature pre-extraction writes to ``au_CLIP_VITB32_8frms/*.npy``
(which runs the tower in float32), so a model trained on pre-extracted AU features reads
realtime ones unchanged; a half-precision model runs the tower in its own dtype, and reads
the same vectors to that precision.

The open_clip model is loaded once per process for each ``(au_clip_model, au_clip_pretrained)``
pair, in float32 on the CPU; only its text tower is kept. It is frozen and in eval mode. Each
(device, dtype) it is asked to run in gets its own copy, made once from the loaded float32
weights (so a bf16 user never degrades the weights a float32 user reads), and its own CPU
cache of the features of texts already seen. The tower computes in exactly that dtype, with
autocast off, so its features (always returned in float32) do not depend on the caller's AMP
setting.
"""
from __future__ import annotations

import copy
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from my_affectgpt.common.devices import precision_as_placed
from my_affectgpt.common.errors import UserError

logger = logging.getLogger("my_affectgpt")

# Feature cache bound: 64k texts x 512 floats is 128 MiB of CPU memory.
MAX_CACHED_TEXTS = 65536


class AUClipLoadError(UserError, ValueError):
    """``au_clip_model`` / ``au_clip_pretrained`` cannot be loaded."""


class _PlacedTower:
    """The text tower on one device in one dtype, with the features it made (CPU, float32)."""

    def __init__(self, model, tokenizer, device: torch.device):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.features: "OrderedDict[str, torch.Tensor]" = OrderedDict()

    def encode_new(self, texts: List[str]) -> torch.Tensor:
        """Encode ``texts``; L2-normalised float32 features on the CPU."""
        with torch.no_grad(), precision_as_placed(self.device):
            tokens = self.tokenizer(texts).to(self.device)
            feats = self.model.encode_text(tokens).float()
            feats = feats / feats.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        return feats.cpu()


class _TextTower:
    """An open_clip model reduced to its text tower (float32, CPU), its tokenizer, and its
    copies placed on the (device, dtype) pairs asked for."""

    def __init__(self, model, tokenizer, embed_dim: int):
        self.model = model
        self.tokenizer = tokenizer
        self.embed_dim = embed_dim
        self._placed: Dict[Tuple[torch.device, torch.dtype], _PlacedTower] = {}

    def placed(self, device: torch.device, dtype: torch.dtype) -> _PlacedTower:
        key = (device, dtype)
        if key not in self._placed:
            as_loaded = device == torch.device("cpu") and dtype == torch.float32
            model = self.model if as_loaded else copy.deepcopy(self.model).to(device=device, dtype=dtype)
            self._placed[key] = _PlacedTower(model, self.tokenizer, device)
        return self._placed[key]


_TOWERS: Dict[Tuple[str, str], _TextTower] = {}


def _model_name(au_clip_model: str) -> str:
    """The open_clip model name; a model-config JSON is registered and named after its stem."""
    import open_clip

    if au_clip_model.endswith(".json") or os.sep in au_clip_model:
        path = Path(os.path.expanduser(os.path.expandvars(au_clip_model)))
        if not path.is_file():
            raise AUClipLoadError(
                f"model.au_clip_model: open_clip model-config JSON not found: {path}. Use an open_clip "
                "model name such as ViT-B-32 or the path of an existing model-config JSON"
            )
        open_clip.add_model_config(str(path))
        return path.stem
    if au_clip_model not in open_clip.list_models():
        import difflib

        close = difflib.get_close_matches(au_clip_model, open_clip.list_models(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise AUClipLoadError(
            f"model.au_clip_model: '{au_clip_model}' is not an open_clip model.{hint} "
            "The AU features are made with ViT-B-32; a model-config JSON path also works"
        )
    return au_clip_model


def _pretrained(au_clip_pretrained: str) -> Optional[str]:
    """None for random weights, a checked local file path, or an open_clip tag such as 'openai'."""
    value = au_clip_pretrained.strip()
    if value.lower() in ("", "none"):
        return None
    expanded = os.path.expanduser(os.path.expandvars(value))
    if os.sep in value or os.path.splitext(value)[1] in (".pt", ".pth", ".bin", ".safetensors"):
        if not os.path.isfile(expanded):
            raise AUClipLoadError(
                f"model.au_clip_pretrained: checkpoint file not found: {expanded}. Use 'openai', "
                "the path of an existing open_clip checkpoint, or 'none' for random weights"
            )
        return expanded
    return value


def _load_tower(au_clip_model: str, au_clip_pretrained: str) -> _TextTower:
    import open_clip

    name = _model_name(au_clip_model)
    pretrained = _pretrained(au_clip_pretrained)
    try:
        model = open_clip.create_model(name, pretrained=pretrained)
    except (RuntimeError, OSError, ValueError) as err:
        raise AUClipLoadError(
            f"cannot load the AU CLIP text encoder {au_clip_model!r} with weights {au_clip_pretrained!r}: {err}"
        ) from err
    if hasattr(model, "visual"):  # only the text tower is needed
        del model.visual
    model.requires_grad_(False)
    model.eval()
    logger.info("loaded AU CLIP text encoder %s (weights: %s)", au_clip_model, au_clip_pretrained)
    embed_dim = open_clip.get_model_config(name)["embed_dim"]
    return _TextTower(model, open_clip.get_tokenizer(name), embed_dim)


def _tower(au_clip_model: str, au_clip_pretrained: str) -> _TextTower:
    key = (au_clip_model, au_clip_pretrained)
    if key not in _TOWERS:
        _TOWERS[key] = _load_tower(*key)
    return _TOWERS[key]


class AUClipTextEncoder:
    """Encodes AU description texts with the text tower placed on ``device`` in ``dtype``;
    returns float32 features on ``device``.

    Not an ``nn.Module`` on purpose: the text tower is shared by every user in the process
    and never belongs to a model's state dict or optimiser. :meth:`to` says where it runs
    (AffectGPT calls it whenever the model moves); the tower is placed there at the next
    :meth:`encode`.
    """

    def __init__(self, au_clip_model: str, au_clip_pretrained: str,
                 device="cpu", dtype: torch.dtype = torch.float32):
        self._tower = _tower(au_clip_model, au_clip_pretrained)
        self.device = torch.device(device)
        self.dtype = dtype

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "AUClipTextEncoder":
        if device is not None:
            self.device = torch.device(device)
        if dtype is not None:
            self.dtype = dtype
        return self

    def encode(self, texts: List[str]) -> torch.Tensor:
        """``[len(texts), embed_dim]`` float32 features; each distinct text is encoded once."""
        placed = self._tower.placed(self.device, self.dtype)
        cache = placed.features
        new = list(dict.fromkeys(t for t in texts if t not in cache))
        if new:
            for text, feat in zip(new, placed.encode_new(new)):
                cache[text] = feat
        for text in texts:
            cache.move_to_end(text)
        if texts:
            feats = torch.stack([cache[t] for t in texts])
        else:
            feats = torch.zeros(0, self.embed_dim)
        while len(cache) > MAX_CACHED_TEXTS:
            cache.popitem(last=False)
        return feats.to(self.device)

    @property
    def embed_dim(self) -> int:
        return self._tower.embed_dim
