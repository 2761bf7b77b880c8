"""The Q-Former of the original AffectGPT, built from a BERT config with ``transformers``.

The original builds every Q-Former (video, audio, AU, Multi) from the BERT config it reads
from ``models/bert-base-uncased``: two layers, cross-attention in every layer, keys/values
read from the fused sequence's width, and K learned query tokens initialised from
N(0, initializer_range). Nothing is loaded from BERT's weights; only the sizes are used.
Here the same network is :class:`transformers.Blip2QFormerModel` (the LAVIS Q-Former that
the original copied), without the text-only feed-forward sub-modules (``intermediate`` /
``output``) the original deletes: queries never use them, so every parameter gets a
gradient and DDP needs no ``find_unused_parameters``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from my_affectgpt.common.errors import UserError, UserFileNotFoundError

QFORMER_LAYERS = 2  # the original's init_video_Qformer(num_hidden_layers=2) for every branch
CONFIG_KEY = "model.qformer_config"
# bert-base-uncased's sizes, used when model.qformer_config is empty.
BERT_BASE_SIZES = dict(
    hidden_size=768,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu",
    layer_norm_eps=1e-12,
    initializer_range=0.02,
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
)
_REQUIRED = ("hidden_size", "num_attention_heads", "intermediate_size")


class QFormerConfigError(UserError):
    """``model.qformer_config`` points at a file that is not a usable BERT config."""


def load_qformer_bert_config(path: "str | os.PathLike"):
    """The BERT config the Q-Formers take their sizes from.

    ``path``: a BERT ``config.json`` or a folder holding one (like the original's
    ``models/bert-base-uncased``); empty means bert-base sizes. Raises
    :class:`UserFileNotFoundError` or :class:`QFormerConfigError`, naming the path.
    """
    from transformers import BertConfig

    if not str(path):
        return BertConfig(**BERT_BASE_SIZES)
    given = Path(path)
    file = given / "config.json" if given.is_dir() else given
    if not file.is_file():
        raise UserFileNotFoundError(
            f"{CONFIG_KEY}: {file} does not exist; point it at a BERT config.json (or the folder holding it, "
            "e.g. a copy of bert-base-uncased's), or leave it empty for bert-base sizes"
        )
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise QFormerConfigError(f"{CONFIG_KEY}: {file} is not a JSON file ({err}); it must be a BERT config.json")
    if not isinstance(raw, dict) or raw.get("model_type") != "bert":
        found = raw.get("model_type") if isinstance(raw, dict) else type(raw).__name__
        raise QFormerConfigError(
            f"{CONFIG_KEY}: {file} is not a BERT config (model_type is {found!r}, expected 'bert'); "
            "use bert-base-uncased's config.json or leave the key empty for bert-base sizes"
        )
    absent = [key for key in _REQUIRED if not isinstance(raw.get(key), int)]
    if absent:
        raise QFormerConfigError(f"{CONFIG_KEY}: {file} lacks integer {', '.join(absent)}; it must be a full BERT config")
    if raw["hidden_size"] % raw["num_attention_heads"]:
        raise QFormerConfigError(
            f"{CONFIG_KEY}: {file} has hidden_size {raw['hidden_size']}, not divisible by "
            f"num_attention_heads {raw['num_attention_heads']}"
        )
    return BertConfig.from_dict(raw)


def build_qformer(bert, encoder_width: int) -> nn.Module:
    """A freshly initialised two-layer Q-Former whose cross-attention reads ``encoder_width``-wide rows."""
    from transformers import Blip2QFormerConfig, Blip2QFormerModel

    config = Blip2QFormerConfig(
        hidden_size=bert.hidden_size,
        num_attention_heads=bert.num_attention_heads,
        intermediate_size=bert.intermediate_size,
        hidden_act=bert.hidden_act,
        hidden_dropout_prob=bert.hidden_dropout_prob,
        attention_probs_dropout_prob=bert.attention_probs_dropout_prob,
        layer_norm_eps=bert.layer_norm_eps,
        initializer_range=bert.initializer_range,
        num_hidden_layers=QFORMER_LAYERS,
        cross_attention_frequency=1,
        encoder_hidden_size=encoder_width,
        use_qformer_text_input=False,  # no text FFN: the queries' own FFN is all the original keeps
    )
    return Blip2QFormerModel(config)


class QueryReader(nn.Module):
    """K learned queries that read a sequence ``[B, T, D]`` through a Q-Former -> ``[B, K, hidden]``.

    ``mask`` (``[B, T]``, True = real row) hides padded rows from the cross-attention. A
    sample without any real row reads zero rows instead, so it gets a finite output that
    does not depend on its padding.
    """

    def __init__(self, bert, encoder_width: int, num_tokens: int):
        super().__init__()
        self.qformer = build_qformer(bert, encoder_width)
        self.query_tokens = nn.Parameter(torch.empty(1, num_tokens, bert.hidden_size))
        nn.init.normal_(self.query_tokens, mean=0.0, std=bert.initializer_range)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if x.shape[1] == 0:  # nothing to read in the whole batch
            x = x.new_zeros(x.shape[0], 1, x.shape[2])
            mask = None
        elif mask is not None:
            empty = ~mask.any(dim=1)
            x = x.masked_fill(empty[:, None, None], 0.0)
            mask = mask | empty[:, None]
            if bool(mask.all()):  # same arithmetic as no mask at all
                mask = None
        out = self.qformer(
            query_embeds=self.query_tokens.expand(x.shape[0], -1, -1),
            encoder_hidden_states=x,
            encoder_attention_mask=None if mask is None else mask.long(),
        )
        return out.last_hidden_state
