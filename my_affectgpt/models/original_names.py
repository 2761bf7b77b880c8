"""The original AffectGPT's parameter names for this model's fusion branches, both ways.

The original keeps every fusion part as a flat attribute of its model (``affectgpt_proj``,
``video_attention_mlp``, ``multi_Qformer.bert...``, ``multi_query_tokens``); this model keeps
them in ``branches.<kind>`` (:class:`~my_affectgpt.models.fusion.FusionBranch`). For the
fusion types that mean what they meant in the original (``attention``, ``mean``,
``qformer``; Multi ``attention`` and ``qformer``), :class:`OriginalNames` maps one naming to
the other, so a checkpoint written by the original runner (its ``model`` dict) loads here
and this model's weights can be written under the original names. Branches of this
project's own types (``softmax_attention``, ``cross_attention``) keep this model's names;
LoRA names are the same in both (``llama_model.base_model.model...lora_A.default.weight``).

The original builds every branch, and ``image_llama_proj``, whatever the prompts use, and
saves them all; keys of parts this config does not build are reported as not used.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from my_affectgpt.models.fusion import (
    MultiAttentionFusion,
    MultiQFormerFusion,
    QFormerFusion,
    ScoreWeightedSum,
    TimeMean,
)

PROJECTIONS = {"video": "affectgpt_proj", "audio": "audio_llama_proj", "au": "au_llama_proj", "multi": "multi_llama_proj"}
POSITION_EMBEDDINGS = {
    "video": "video_frame_position_embedding", "audio": "audio_position_embedding",
    "au": "au_position_embedding", "multi": "multi_position_embedding",
}
MULTI_PARTS = {"video_embs": "multi_video_embs", "audio_embs": "multi_audio_embs",
               "attention_mlp": "attention_mlp", "fc_att": "fc_att"}
# Top-level modules of the original model whose weights this model never loads: the image
# projection (no image branch here) and the frozen encoders (loaded from their own files).
NEVER_LOADED = ("image_llama_proj", "visual_encoder", "acoustic_encoder")
KNOWN_MODULES = frozenset(
    [*PROJECTIONS.values(), *POSITION_EMBEDDINGS.values(), *MULTI_PARTS.values(), *NEVER_LOADED]
    + [f"{kind}_{part}" for kind in ("video", "audio", "au", "multi")
       for part in ("attention_mlp", "Qformer", "query_tokens")]
)
LORA_PREFIX = "llama_model."
# Buffers the original's BERT Q-Former saves that carry no learned state.
IGNORED_BUFFER = re.compile(r"^\w+_Qformer\.bert\.embeddings\.position_ids$")
# transformers' Q-Former -> the original's BERT: the attention's inner module is ``self`` there,
# and the LayerNorm on the query embeddings lives in ``embeddings``.
_HF_ATTENTION = re.compile(r"attention\.attention\.")


def _qformer_name(hf_name: str) -> str:
    if hf_name.startswith("layernorm."):
        return "embeddings.LayerNorm." + hf_name[len("layernorm."):]
    return _HF_ATTENTION.sub("attention.self.", hf_name)


def _qformer_rules(kind: str, local: str) -> List[Tuple[str, str]]:
    return [
        (f"{local}position_embedding.", f"{POSITION_EMBEDDINGS[kind]}."),
        (f"{local}reader.query_tokens", f"{kind}_query_tokens"),
        (f"{local}reader.qformer.", f"{kind}_Qformer.bert."),
    ]


def _branch_rules(kind: str, fusion: nn.Module) -> Optional[List[Tuple[str, str]]]:
    """(prefix here, prefix in the original) pairs for a branch, or None for this project's types."""
    rules = [("proj.", f"{PROJECTIONS[kind]}.")]
    if isinstance(fusion, ScoreWeightedSum):
        return rules + [("fusion.scores.", f"{kind}_attention_mlp.")]
    if isinstance(fusion, TimeMean):
        return rules
    if isinstance(fusion, QFormerFusion):
        return rules + _qformer_rules(kind, "fusion.")
    if isinstance(fusion, (MultiQFormerFusion, MultiAttentionFusion)):
        rules += [(f"fusion.{ours}.", f"{theirs}.") for ours, theirs in MULTI_PARTS.items() if hasattr(fusion, ours)]
        return rules + (_qformer_rules(kind, "fusion.") if isinstance(fusion, MultiQFormerFusion) else [])
    return None


def _original_name(local: str, rules: Sequence[Tuple[str, str]]) -> str:
    for ours, theirs in rules:
        if local.startswith(ours):
            rest = local[len(ours):]
            return theirs + (_qformer_name(rest) if theirs.endswith("_Qformer.bert.") else rest)
    raise RuntimeError(f"no original name for fusion parameter '{local}'")  # a fusion module this map does not know


@dataclass
class OriginalCheckpoint:
    """An original-named state dict, renamed for this model.

    ``weights``: by this model's names (keys this map does not know pass through unchanged,
    so the model's own strict check reports them). ``not_used``: original keys of parts this
    config does not build. ``ignored``: buffers without learned state.
    """

    weights: Dict[str, torch.Tensor] = field(default_factory=dict)
    not_used: List[str] = field(default_factory=list)
    ignored: List[str] = field(default_factory=list)


class OriginalNames:
    """The name map for ``branches`` (kind -> FusionBranch), whose own names start with ``prefix``."""

    def __init__(self, branches: Mapping[str, nn.Module], prefix: str = "branches."):
        self.to_original: Dict[str, str] = {}
        for kind, branch in branches.items():
            rules = _branch_rules(kind, branch.fusion)
            if rules is None:
                continue
            for local in branch.state_dict():
                self.to_original[f"{prefix}{kind}.{local}"] = _original_name(local, rules)
        self.to_internal = {theirs: ours for ours, theirs in self.to_original.items()}

    def to_original_names(self, state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """``state_dict`` with every mapped name replaced by the original's; other names unchanged."""
        return {self.to_original.get(name, name): value for name, value in state_dict.items()}

    def from_original_names(self, state_dict: Mapping[str, torch.Tensor]) -> OriginalCheckpoint:
        """Rename an original checkpoint's ``model`` dict for this model (see :class:`OriginalCheckpoint`)."""
        out = OriginalCheckpoint()
        for name, value in state_dict.items():
            if name in self.to_internal:
                out.weights[self.to_internal[name]] = value
            elif IGNORED_BUFFER.match(name):
                out.ignored.append(name)
            elif not name.startswith(LORA_PREFIX) and name.split(".", 1)[0] in KNOWN_MODULES:
                out.not_used.append(name)
            else:
                out.weights[name] = value
        return out
