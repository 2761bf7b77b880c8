"""Fusion modules: a modality's feature sequence -> a few tokens in the LLM's embedding space.

Per-modality fusion (``{video,audio,au}_fusion_type``) turns ``[B, T, D]`` (with an optional
``[B, T]`` mask, True = real row) into ``[B, K, D_out]``:

- ``attention``: K sets of learned scores over time, masked softmax, weighted sums.
- ``mean``: the masked mean, one token.
- ``qformer``: K learned queries cross-attending to the sequence through a BLIP-2 Q-Former.

The Multi pre-fusion (``multi_fusion_type``) fuses face-or-frame ``[B, T, Dv]`` with audio
``[B, C, Da]`` into ``[B, K, H]``: ``qformer`` (both projected to a common width, concatenated
along time with learned position and modality-type embeddings, read by K learned queries)
or ``attention`` (two-way cross-modal attention, then attention pooling to K tokens).

:class:`FusionBranch` pairs a fusion module with its linear projection to the LLM width and
applies the ``frozen_*`` flags. A sample whose rows are all masked (an empty AU channel)
gets zero vectors from ``attention``/``mean``, never NaN.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

FUSION_TYPES = ("attention", "mean", "qformer")
MULTI_FUSION_TYPES = ("qformer", "attention")


@dataclass(frozen=True)
class QFormerSettings:
    """The Q-Former shape shared by every Q-Former and by the Multi common space."""

    hidden_size: int
    num_layers: int
    num_heads: int
    max_positions: int

    @classmethod
    def from_bert_config(cls, path: str = "") -> "QFormerSettings":
        """Sizes from a BERT config file or folder ('' = bert-base): 2 layers, 64 positions."""
        import json
        from pathlib import Path

        if not path:
            return cls(768, 2, 12, 64)
        file = Path(path) / "config.json" if Path(path).is_dir() else Path(path)
        bert = json.loads(file.read_text(encoding="utf-8"))
        return cls(bert["hidden_size"], 2, bert["num_attention_heads"], 64)

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"model.qformer_hidden_size ({self.hidden_size}) must be divisible by "
                f"model.qformer_num_heads ({self.num_heads})"
            )


def _full_mask(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    if mask is None:
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match features {tuple(x.shape[:2])}")
    return mask.to(device=x.device, dtype=torch.bool)


class AttentionPooling(nn.Module):
    """K sets of learned scores over time; each token is a masked-softmax weighted sum."""

    def __init__(self, in_dim: int, num_tokens: int):
        super().__init__()
        self.scores = nn.Linear(in_dim, num_tokens)
        self.out_dim = in_dim

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        mask = _full_mask(x, mask)
        scores = self.scores(x).masked_fill(~mask.unsqueeze(-1), float("-inf"))  # [B, T, K]
        weights = torch.softmax(scores, dim=1)
        weights = torch.where(mask.unsqueeze(-1), weights, torch.zeros_like(weights))  # all-masked -> 0
        return torch.einsum("btk,btd->bkd", weights, x)


class MeanPooling(nn.Module):
    """The masked mean over time: one token."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.out_dim = in_dim

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        weights = _full_mask(x, mask).to(x.dtype).unsqueeze(-1)  # [B, T, 1]
        total = (x * weights).sum(dim=1, keepdim=True)
        return total / weights.sum(dim=1, keepdim=True).clamp(min=1.0)


def _qformer(encoder_width: int, settings: QFormerSettings):
    from transformers import Blip2QFormerConfig, Blip2QFormerModel

    config = Blip2QFormerConfig(
        hidden_size=settings.hidden_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads,
        intermediate_size=4 * settings.hidden_size,
        cross_attention_frequency=1,
        encoder_hidden_size=encoder_width,
    )
    return Blip2QFormerModel(config)


class QueryTokens(nn.Module):
    """K learned query vectors read out through a Q-Former that cross-attends to the input."""

    def __init__(self, encoder_width: int, num_tokens: int, settings: QFormerSettings):
        super().__init__()
        self.qformer = _qformer(encoder_width, settings)
        self.query_tokens = nn.Parameter(torch.empty(1, num_tokens, settings.hidden_size))
        nn.init.normal_(self.query_tokens, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        queries = self.query_tokens.expand(x.shape[0], -1, -1)
        out = self.qformer(
            query_embeds=queries,
            encoder_hidden_states=x,
            encoder_attention_mask=mask.long(),
        )
        return out.last_hidden_state


class QFormerFusion(nn.Module):
    """Per-modality Q-Former: ``[B, T, D]`` -> ``[B, K, qformer_hidden_size]``."""

    def __init__(self, in_dim: int, num_tokens: int, settings: QFormerSettings):
        super().__init__()
        self.reader = QueryTokens(in_dim, num_tokens, settings)
        self.out_dim = settings.hidden_size

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        mask = _full_mask(x, mask)
        if x.shape[1] == 0:  # no rows in the whole batch: one masked zero row keeps shapes valid
            x = x.new_zeros(x.shape[0], 1, x.shape[2])
            mask = mask.new_zeros(x.shape[0], 1)
        return self.reader(x, mask)


class MultiQFormerFusion(nn.Module):
    """Pre-fusion of face-or-frame with audio through one Q-Former over both sequences."""

    def __init__(self, visual_dim: int, audio_dim: int, num_tokens: int, settings: QFormerSettings):
        super().__init__()
        width = settings.hidden_size
        self.visual_in = nn.Linear(visual_dim, width)
        self.audio_in = nn.Linear(audio_dim, width)
        self.position_embedding = nn.Embedding(settings.max_positions, width)
        self.modality_embedding = nn.Embedding(2, width)  # 0: face/frame, 1: audio
        self.reader = QueryTokens(width, num_tokens, settings)
        self.out_dim = width

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        steps = visual.shape[1] + audio.shape[1]
        if steps > self.position_embedding.num_embeddings:
            raise ValueError(
                f"the Multi pre-fusion gets {visual.shape[1]} face/frame + {audio.shape[1]} audio steps = "
                f"{steps}, more than model.qformer_max_positions ({self.position_embedding.num_embeddings}); "
                "raise qformer_max_positions or sample fewer frames/clips"
            )
        seq = torch.cat([self.visual_in(visual), self.audio_in(audio)], dim=1)
        device = seq.device
        positions = torch.arange(steps, device=device)
        types = torch.cat([
            torch.zeros(visual.shape[1], dtype=torch.long, device=device),
            torch.ones(audio.shape[1], dtype=torch.long, device=device),
        ])
        seq = seq + self.position_embedding(positions) + self.modality_embedding(types)
        mask = torch.ones(seq.shape[:2], dtype=torch.bool, device=device)
        return self.reader(seq, mask)


class MultiAttentionFusion(nn.Module):
    """Two-way modality attention: face/frame attends over audio and audio over face/frame.

    Both streams are projected to a common width; each attends over the other (residual +
    layer norm); the two attended sequences are concatenated along time and pooled to K
    tokens by :class:`AttentionPooling`.
    """

    def __init__(self, visual_dim: int, audio_dim: int, num_tokens: int, settings: QFormerSettings):
        super().__init__()
        width = settings.hidden_size
        self.visual_in = nn.Linear(visual_dim, width)
        self.audio_in = nn.Linear(audio_dim, width)
        self.visual_to_audio = nn.MultiheadAttention(width, settings.num_heads, batch_first=True)
        self.audio_to_visual = nn.MultiheadAttention(width, settings.num_heads, batch_first=True)
        self.visual_norm = nn.LayerNorm(width)
        self.audio_norm = nn.LayerNorm(width)
        self.pool = AttentionPooling(width, num_tokens)
        self.out_dim = width

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        v, a = self.visual_in(visual), self.audio_in(audio)
        v_att, _ = self.visual_to_audio(v, a, a, need_weights=False)
        a_att, _ = self.audio_to_visual(a, v, v, need_weights=False)
        fused = torch.cat([self.visual_norm(v + v_att), self.audio_norm(a + a_att)], dim=1)
        return self.pool(fused)


def build_fusion(fusion_type: str, in_dim: int, num_tokens: int, settings: QFormerSettings) -> nn.Module:
    """A per-modality fusion module; ``.out_dim`` is its output width."""
    if fusion_type == "attention":
        return AttentionPooling(in_dim, num_tokens)
    if fusion_type == "mean":
        if num_tokens != 1:
            raise ValueError(f"mean fusion gives one token, but {num_tokens} query tokens are configured")
        return MeanPooling(in_dim)
    if fusion_type == "qformer":
        return QFormerFusion(in_dim, num_tokens, settings)
    raise ValueError(f"unknown fusion type '{fusion_type}'; valid: {', '.join(FUSION_TYPES)}")


def build_multi_fusion(
    fusion_type: str, visual_dim: int, audio_dim: int, num_tokens: int, settings: QFormerSettings
) -> nn.Module:
    """The Multi pre-fusion module; ``.out_dim`` is its output width."""
    if fusion_type == "qformer":
        return MultiQFormerFusion(visual_dim, audio_dim, num_tokens, settings)
    if fusion_type == "attention":
        return MultiAttentionFusion(visual_dim, audio_dim, num_tokens, settings)
    raise ValueError(f"unknown multi fusion type '{fusion_type}'; valid: {', '.join(MULTI_FUSION_TYPES)}")


class FusionBranch(nn.Module):
    """A fusion module followed by its linear projection to the LLM width.

    ``freeze_fusion`` / ``freeze_proj`` apply the config's ``frozen_*`` flags: the part gets
    ``requires_grad=False`` (so no optimiser ever sees it) and stays in eval mode.
    """

    def __init__(self, fusion: nn.Module, llm_width: int, freeze_fusion: bool = False, freeze_proj: bool = False):
        super().__init__()
        self.fusion = fusion
        self.proj = nn.Linear(fusion.out_dim, llm_width)
        self._frozen = [part for part, frozen in ((self.fusion, freeze_fusion), (self.proj, freeze_proj)) if frozen]
        for part in self._frozen:
            part.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True) -> "FusionBranch":
        super().train(mode)
        for part in self._frozen:
            part.train(False)
        return self

    def forward(self, *inputs: torch.Tensor, **kwargs) -> torch.Tensor:
        """Features (any float dtype, e.g. the LLM's) are cast to the branch's own dtype first."""
        dtype = self.proj.weight.dtype
        return self.proj(self.fusion(*(x.to(dtype) for x in inputs), **kwargs))
