"""Frozen pre-trained encoders for raw frames/faces (CLIP) and audio clips (HuBERT).

They are registered in the ``encoder`` bucket under the names configs use
(``visual_encoder: CLIP_VIT_LARGE``, ``acoustic_encoder: HUBERT_LARGE``) and load any local
Hugging Face directory (or hub id) with ``from_pretrained``. Both stay frozen and in eval
mode whatever the parent module does, run without autograd in chunks of ``batch_size``, and
return float32 features on the device they were moved to, whatever their own dtype. They
compute in that dtype with autocast off, as the extraction does: their features do not
depend on ``run.amp``, and half-precision weights never meet another autocast dtype (an fp16
encoder under bf16 autocast fails in ``torch.cat``).
transformers is imported when an encoder is built, not when this module is imported.
"""
from __future__ import annotations


import torch
from torch import nn

from my_affectgpt.common.devices import precision_as_placed
from my_affectgpt.common.errors import UserError
from my_affectgpt.common.registry import registry
from my_affectgpt.common.devices import resolve_dtype

# Checkpoint keys that may be absent without harm: HuBERT's mask embedding is used only
# when masking inputs during pre-training.
_IGNORABLE_MISSING = ("masked_spec_embed",)



class EncoderLoadError(UserError, ValueError):
    """An encoder checkpoint is missing, of the wrong kind, or incomplete."""


def _load_pretrained(model_cls, path: str, what: str, path_key: str):
    """``model_cls.from_pretrained(path)`` that refuses to fill missing weights randomly."""
    try:
        model, loading_info = model_cls.from_pretrained(path, output_loading_info=True)
    except (OSError, ValueError) as err:
        raise EncoderLoadError(
            f"cannot load the {what} from '{path}': {err}. Set {path_key} to a local model "
            "directory (config.json + weights) or a reachable hub id"
        ) from err
    missing = [k for k in loading_info.get("missing_keys", []) if not k.endswith(_IGNORABLE_MISSING)]
    if missing:
        raise EncoderLoadError(
            f"the {what} checkpoint at '{path}' lacks weights {sorted(missing)[:5]} "
            f"({len(missing)} missing); point {path_key} at a complete checkpoint"
        )
    return model


class FrozenEncoder(nn.Module):
    """Base class: frozen parameters, always in eval mode, no autograd, chunked batches."""

    out_dim: int

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size = batch_size

    def _freeze(self) -> None:
        for param in self.parameters():
            param.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FrozenEncoder":
        """Ignore ``mode``: a frozen encoder never enters training mode (dropout, masking)."""
        return super().train(False)

    def _encode_chunk(self, chunk: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def _param(self) -> torch.Tensor:
        return next(self.parameters())

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        param = self._param
        with torch.no_grad(), precision_as_placed(param.device):
            outputs = [
                self._encode_chunk(chunk.to(device=param.device)).float()
                for chunk in inputs.split(self.batch_size)
            ]
        return torch.cat(outputs)


@registry.register_encoder("CLIP_VIT_LARGE")
class ClipVisualEncoder(FrozenEncoder):
    """CLIP image features (the projected pooled embedding; 768 wide for ViT-L/14).

    Takes CLIP-normalised pixels ``[N, 3, H, W]`` or ``[B, T, 3, H, W]`` and returns
    ``[N, out_dim]`` (``N = B*T``), the same vector ``CLIPModel.get_image_features`` gives.
    A full CLIP checkpoint (``openai/clip-vit-large-patch14``) keeps only its vision tower
    and projection; a ``CLIPVisionModelWithProjection`` directory loads as is.
    """

    path_key = "model.visual_encoder_path"

    def __init__(self, path: str, batch_size: int = 32):
        super().__init__(batch_size)
        from transformers import AutoConfig, CLIPModel, CLIPVisionModelWithProjection

        try:
            model_type = AutoConfig.from_pretrained(path).model_type
        except (OSError, ValueError) as err:
            raise EncoderLoadError(
                f"cannot read a model config from '{path}': {err}. Set {self.path_key} to a "
                "CLIP model directory"
            ) from err
        if model_type not in ("clip", "clip_vision_model"):
            raise EncoderLoadError(
                f"'{path}' holds a '{model_type}' model, not CLIP; set {self.path_key} to a "
                "CLIP checkpoint (e.g. openai/clip-vit-large-patch14)"
            )
        model_cls = CLIPModel if model_type == "clip" else CLIPVisionModelWithProjection
        model = _load_pretrained(model_cls, path, "CLIP visual encoder", self.path_key)
        self.vision_model = model.vision_model
        self.visual_projection = model.visual_projection
        self.out_dim = self.visual_projection.out_features
        self._freeze()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.ndim == 5:
            pixels = pixels.flatten(0, 1)
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"expected CLIP pixels [N, 3, H, W] or [B, T, 3, H, W], got {tuple(pixels.shape)}")
        return super().forward(pixels)

    def _encode_chunk(self, chunk: torch.Tensor) -> torch.Tensor:
        pooled = self.vision_model(pixel_values=chunk.to(self._param.dtype)).pooler_output
        return self.visual_projection(pooled)


@registry.register_encoder("HUBERT_LARGE")
class HubertAudioEncoder(FrozenEncoder):
    """HuBERT clip features: mean of the last 4 hidden layers, then mean over time.

    Takes 16 kHz mono clips ``[N, samples]`` (the dataset's ``[8, 32000]`` per video) and
    returns ``[N, hidden]`` (1024 for HuBERT-large). Each clip is normalised to zero mean and
    unit variance first when the checkpoint expects it (``do_normalize`` of its
    ``preprocessor_config.json``; without that file, when its feature extractor uses layer
    norm, as Hugging Face's feature extractor decides).
    """

    path_key = "model.acoustic_encoder_path"
    num_layers_averaged = 4

    def __init__(self, path: str, batch_size: int = 16):
        super().__init__(batch_size)
        from transformers import HubertModel

        self.hubert = _load_pretrained(HubertModel, path, "HuBERT acoustic encoder", self.path_key)
        self.out_dim = self.hubert.config.hidden_size
        self.normalize_input = _wants_normalized_input(path, self.hubert.config)
        self._freeze()

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        if waves.ndim != 2:
            raise ValueError(f"expected audio clips [N, samples], got {tuple(waves.shape)}")
        return super().forward(waves)

    def _encode_chunk(self, chunk: torch.Tensor) -> torch.Tensor:
        chunk = chunk.float()
        if self.normalize_input:
            chunk = (chunk - chunk.mean(dim=1, keepdim=True)) / torch.sqrt(chunk.var(dim=1, keepdim=True, unbiased=False) + 1e-7)
        hidden = self.hubert(chunk.to(self._param.dtype), output_hidden_states=True).hidden_states
        last = torch.stack(hidden[-self.num_layers_averaged:]).mean(dim=0)  # [N, time, hidden]
        return last.mean(dim=1)


def _wants_normalized_input(path: str, config) -> bool:
    from transformers import Wav2Vec2FeatureExtractor

    try:
        return bool(Wav2Vec2FeatureExtractor.from_pretrained(path).do_normalize)
    except OSError:
        return config.feat_extract_norm == "layer"


def build_encoder(name: str, path: str, device="cpu", dtype="fp32", reg=registry) -> FrozenEncoder:
    """Build the registered encoder ``name`` from ``path`` on ``device`` in ``dtype``."""
    encoder = reg.get_encoder_class(name)(path)
    return encoder.to(device=torch.device(device), dtype=resolve_dtype(dtype))
