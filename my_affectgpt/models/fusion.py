"""Fusion branches: a modality's feature sequence -> a few tokens in the LLM's embedding space.

Per-modality fusion (``{video,audio,au}_fusion_type``; video = frame or face) reads
``[B, T, D]`` with an optional ``[B, T]`` mask (True = real row; the AU channel pads rows).
The names mean what they meant in the original AffectGPT:

- ``attention``: one unnormalised score per time step (a ``D -> 1`` linear layer, no
  softmax); the fused vector is the score-weighted sum over time.
- ``mean``: the mean over time.
- ``qformer``: a learned position embedding is added (32 rows for video and AU, 8 for
  audio), then K learned queries read the sequence through a two-layer Q-Former.
- ``softmax_attention`` (this project's): K sets of scores, each a masked softmax over time,
  giving K weighted sums.

The Multi pre-fusion (``multi_fusion_type``) reads face-or-frame ``[B, Tv, Dv]`` and audio
``[B, Ta, Da]``; both are first mapped to ``M = max(Dv, Da)``:

- ``qformer``: both sequences mapped to M, concatenated along time (visual first), a learned
  position embedding (264 rows) added, then K queries read them through a Q-Former.
- ``attention``: each stream's mean over time mapped to M; two linear layers (2M -> M -> 2,
  no activation, no softmax) give one weight per stream; the fused vector is their weighted sum.
- ``cross_attention`` (this project's): each stream attends over the other, and the two
  attended sequences are pooled to K tokens by ``softmax_attention``.

:class:`FusionBranch` adds the linear projection to the LLM width; a fusion that gives one
vector (``attention``, ``mean``, Multi ``attention``) has it repeated for the K query tokens,
as the original does. Masks: an all-True mask gives exactly the unmasked result, padded rows
have no influence, and a sample without real rows gets a finite result, never NaN.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from my_affectgpt.common.config_schema import FUSION_TYPES, MULTI_FUSION_TYPES, QFORMER_POSITIONS
from my_affectgpt.models.qformer import QueryReader

BRANCH_KINDS = ("video", "audio", "au")
# Rows of the learned position embedding in front of each Q-Former, as in the original.
POSITION_ROWS = {kind: QFORMER_POSITIONS[kind] for kind in BRANCH_KINDS}
MULTI_POSITION_ROWS = QFORMER_POSITIONS["multi"]


def _real_rows(x: torch.Tensor, mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """The mask as bool on ``x``'s device, or None when every row is real (the unmasked arithmetic)."""
    if mask is None:
        return None
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match features {tuple(x.shape[:2])}")
    mask = mask.to(device=x.device, dtype=torch.bool)
    return None if bool(mask.all()) else mask


class ScoreWeightedSum(nn.Module):
    """``attention``: ``sum_t x_t * score(x_t)`` with unnormalised scores -> ``[B, 1, D]``.

    ``identity_for_one_step``: with a single time step, return it without its score (the
    original's video branch does this for pre-extracted features, e.g. one frame).
    """

    def __init__(self, in_dim: int, num_tokens: int, identity_for_one_step: bool = False):
        super().__init__()
        self.scores = nn.Linear(in_dim, 1)
        self.identity_for_one_step = identity_for_one_step
        self.out_dim = in_dim
        self.repeat = num_tokens

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        mask = _real_rows(x, mask)
        if mask is not None:
            x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        if self.identity_for_one_step and x.shape[1] == 1:
            return x
        scores = self.scores(x)  # [B, T, 1]
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(-1), 0.0)
        return torch.matmul(x.transpose(1, 2), scores).transpose(1, 2)

    def qformer_parts(self) -> Sequence[nn.Module]:
        return ()


class TimeMean(nn.Module):
    """``mean``: the mean over (real) time steps -> ``[B, 1, D]``; no rows give zeros."""

    def __init__(self, in_dim: int, num_tokens: int):
        super().__init__()
        self.out_dim = in_dim
        self.repeat = num_tokens

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        mask = _real_rows(x, mask)
        if mask is None and x.shape[1] > 0:
            return x.mean(dim=1, keepdim=True)
        if mask is None:
            return x.new_zeros(x.shape[0], 1, x.shape[2])
        weights = mask.to(x.dtype).unsqueeze(-1)
        total = x.masked_fill(~mask.unsqueeze(-1), 0.0).sum(dim=1, keepdim=True)
        return total / weights.sum(dim=1, keepdim=True).clamp(min=1.0)

    def qformer_parts(self) -> Sequence[nn.Module]:
        return ()


def _positions(table: nn.Embedding, steps: int, what: str) -> torch.Tensor:
    if steps > table.num_embeddings:
        raise ValueError(
            f"the {what} Q-Former has {table.num_embeddings} learned positions (as in the original AffectGPT) "
            f"but got {steps} time steps; sample at most {table.num_embeddings}"
        )
    return table(torch.arange(steps, device=table.weight.device))


class QFormerFusion(nn.Module):
    """``qformer``: position embedding, then K queries through a Q-Former -> ``[B, K, hidden]``."""

    def __init__(self, in_dim: int, num_tokens: int, bert, position_rows: int, what: str):
        super().__init__()
        self.position_embedding = nn.Embedding(position_rows, in_dim)
        self.reader = QueryReader(bert, in_dim, num_tokens)
        self.what = what
        self.out_dim = bert.hidden_size
        self.repeat = 1

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        mask = _real_rows(x, mask)
        x = x + _positions(self.position_embedding, x.shape[1], self.what).to(x.dtype)
        return self.reader(x, mask)

    def qformer_parts(self) -> Sequence[nn.Module]:
        return (self,)


class SoftmaxAttentionPooling(nn.Module):
    """``softmax_attention``: K sets of scores, each a masked softmax over time -> ``[B, K, D]``."""

    def __init__(self, in_dim: int, num_tokens: int):
        super().__init__()
        self.scores = nn.Linear(in_dim, num_tokens)
        self.out_dim = in_dim
        self.repeat = 1

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        mask = _real_rows(x, mask)
        scores = self.scores(x)  # [B, T, K]
        if mask is None:
            return torch.einsum("btk,btd->bkd", torch.softmax(scores, dim=1), x)
        real = mask.unsqueeze(-1)
        weights = torch.softmax(scores.masked_fill(~real, float("-inf")), dim=1)
        weights = torch.where(real, weights, torch.zeros_like(weights))  # no real rows: zeros, not NaN
        return torch.einsum("btk,btd->bkd", weights, x.masked_fill(~real, 0.0))

    def qformer_parts(self) -> Sequence[nn.Module]:
        return (self,)


class MultiQFormerFusion(nn.Module):
    """Multi ``qformer``: both streams to width M, concatenated, positions added, read by K queries."""

    def __init__(self, visual_dim: int, audio_dim: int, num_tokens: int, bert):
        super().__init__()
        width = max(visual_dim, audio_dim)
        self.video_embs = nn.Linear(visual_dim, width)
        self.audio_embs = nn.Linear(audio_dim, width)
        self.position_embedding = nn.Embedding(MULTI_POSITION_ROWS, width)
        self.reader = QueryReader(bert, width, num_tokens)
        self.out_dim = bert.hidden_size
        self.repeat = 1

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        seq = torch.cat([self.video_embs(visual), self.audio_embs(audio)], dim=1)
        seq = seq + _positions(self.position_embedding, seq.shape[1], "Multi (face/frame + audio steps)")
        return self.reader(seq)

    def qformer_parts(self) -> Sequence[nn.Module]:
        return (self.position_embedding, self.reader)  # the original never freezes the two embs


class MultiAttentionFusion(nn.Module):
    """Multi ``attention``: one unnormalised weight per stream for their time means -> ``[B, 1, M]``."""

    def __init__(self, visual_dim: int, audio_dim: int, num_tokens: int):
        super().__init__()
        width = max(visual_dim, audio_dim)
        self.video_embs = nn.Linear(visual_dim, width)
        self.audio_embs = nn.Linear(audio_dim, width)
        self.attention_mlp = nn.Linear(2 * width, width)
        self.fc_att = nn.Linear(width, 2)
        self.out_dim = width
        self.repeat = num_tokens

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        v = self.video_embs(visual.mean(dim=1))
        a = self.audio_embs(audio.mean(dim=1))
        weights = self.fc_att(self.attention_mlp(torch.cat([v, a], dim=1))).unsqueeze(2)  # [B, 2, 1]
        fused = torch.matmul(torch.stack([v, a], dim=2), weights)  # [B, M, 1]
        return fused.transpose(1, 2)

    def qformer_parts(self) -> Sequence[nn.Module]:
        return ()


class CrossModalAttentionFusion(nn.Module):
    """Multi ``cross_attention``: face/frame attends over audio and audio over face/frame.

    Both streams are projected to the Q-Former width; each attends over the other (residual +
    layer norm); the attended sequences are concatenated along time and pooled to K tokens by
    :class:`SoftmaxAttentionPooling`.
    """

    def __init__(self, visual_dim: int, audio_dim: int, num_tokens: int, bert):
        super().__init__()
        width = bert.hidden_size
        self.visual_in = nn.Linear(visual_dim, width)
        self.audio_in = nn.Linear(audio_dim, width)
        self.visual_to_audio = nn.MultiheadAttention(width, bert.num_attention_heads, batch_first=True)
        self.audio_to_visual = nn.MultiheadAttention(width, bert.num_attention_heads, batch_first=True)
        self.visual_norm = nn.LayerNorm(width)
        self.audio_norm = nn.LayerNorm(width)
        self.pool = SoftmaxAttentionPooling(width, num_tokens)
        self.out_dim = width
        self.repeat = 1

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        v, a = self.visual_in(visual), self.audio_in(audio)
        v_att, _ = self.visual_to_audio(v, a, a, need_weights=False)
        a_att, _ = self.audio_to_visual(a, v, v, need_weights=False)
        fused = torch.cat([self.visual_norm(v + v_att), self.audio_norm(a + a_att)], dim=1)
        return self.pool(fused)

    def qformer_parts(self) -> Sequence[nn.Module]:
        return (self,)


def _check_tokens(num_tokens: int, what: str) -> None:
    if num_tokens < 1:
        raise ValueError(f"{what} needs at least one query token, got {num_tokens}")


def modality_fusion(kind: str, fusion_type: str, in_dim: int, num_tokens: int, bert) -> nn.Module:
    """The fusion module of branch ``kind`` (video, audio or au); ``bert``: the Q-Former sizes."""
    if kind not in POSITION_ROWS:
        raise ValueError(f"unknown branch '{kind}'; valid: {', '.join(BRANCH_KINDS)}")
    _check_tokens(num_tokens, f"the {kind} branch")
    if fusion_type == "attention":
        return ScoreWeightedSum(in_dim, num_tokens, identity_for_one_step=kind == "video")
    if fusion_type == "mean":
        return TimeMean(in_dim, num_tokens)
    if fusion_type == "qformer":
        return QFormerFusion(in_dim, num_tokens, bert, POSITION_ROWS[kind], kind)
    if fusion_type == "softmax_attention":
        return SoftmaxAttentionPooling(in_dim, num_tokens)
    raise ValueError(f"unknown {kind} fusion type '{fusion_type}'; valid: {', '.join(FUSION_TYPES)}")


def multi_fusion(fusion_type: str, visual_dim: int, audio_dim: int, num_tokens: int, bert) -> nn.Module:
    """The Multi pre-fusion module; ``bert``: the Q-Former sizes."""
    _check_tokens(num_tokens, "the Multi branch")
    if fusion_type == "qformer":
        return MultiQFormerFusion(visual_dim, audio_dim, num_tokens, bert)
    if fusion_type == "attention":
        return MultiAttentionFusion(visual_dim, audio_dim, num_tokens)
    if fusion_type == "cross_attention":
        return CrossModalAttentionFusion(visual_dim, audio_dim, num_tokens, bert)
    raise ValueError(f"unknown multi fusion type '{fusion_type}'; valid: {', '.join(MULTI_FUSION_TYPES)}")


class FusionBranch(nn.Module):
    """A fusion module, its linear projection to the LLM width, and the repeat to K tokens.

    ``freeze_fusion`` applies a ``frozen_*_Qformer`` flag: like the original, it freezes the
    fusion's Q-Former parts (Q-Former, query tokens, position embedding; all of a
    ``softmax_attention`` / ``cross_attention`` module) and leaves attention scores and
    the Multi embeddings trainable. ``freeze_proj`` freezes the projection. Frozen parts get
    ``requires_grad=False`` (so no optimiser sees them) and stay in eval mode.
    """

    def __init__(self, fusion: nn.Module, llm_width: int, freeze_fusion: bool = False, freeze_proj: bool = False):
        super().__init__()
        self.fusion = fusion
        self.proj = nn.Linear(fusion.out_dim, llm_width)
        self._frozen = list(fusion.qformer_parts()) if freeze_fusion else []
        if freeze_proj:
            self._frozen.append(self.proj)
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
        tokens = self.proj(self.fusion(*(x.to(dtype) for x in inputs), **kwargs))
        return tokens if self.fusion.repeat == 1 else tokens.expand(-1, self.fusion.repeat, -1)


def build_branch(
    kind: str, fusion_type: str, in_dim: int, num_tokens: int, llm_width: int, bert,
    freeze_qformer: bool = False, freeze_proj: bool = False,
) -> FusionBranch:
    """The ``kind`` (video, audio, au) branch: ``[B, T, in_dim]`` (+ mask) -> ``[B, num_tokens, llm_width]``."""
    return FusionBranch(modality_fusion(kind, fusion_type, in_dim, num_tokens, bert), llm_width,
                        freeze_qformer, freeze_proj)


def build_multi_branch(
    fusion_type: str, visual_dim: int, audio_dim: int, num_tokens: int, llm_width: int, bert,
    freeze_qformer: bool = False, freeze_proj: bool = False,
) -> FusionBranch:
    """The Multi branch: (face-or-frame ``[B, Tv, visual_dim]``, audio ``[B, Ta, audio_dim]``) -> ``[B, K, llm_width]``."""
    return FusionBranch(multi_fusion(fusion_type, visual_dim, audio_dim, num_tokens, bert), llm_width,
                        freeze_qformer, freeze_proj)
