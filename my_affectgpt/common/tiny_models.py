"""Tiny, randomly initialised models saved as ordinary model directories.

Tests, the demo and the benchmarks run offline on CPU, so they build these and then load
them through the same ``from_pretrained(path)`` / open_clip code paths production uses with
real weights. Every builder is seeded: the same call writes the same weights.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

EOS_TOKEN = "<|endoftext|>"

# Words the demo and tests put in prompts and answers; the BPE learns them as whole tokens so
# sequences stay short.
BASE_CORPUS = (
    "###Human: ###Assistant: The audio content is as follows: Meanwhile, we uniformly sample "
    "raw frames from the video: Additionally, the face sequence of the person is: The facial "
    "action units of the person are described as: The subtitle of this video is: Now, please "
    "answer my question based on all the provided information. Please infer the person's "
    "emotional state and provide your reasoning process. Please recognize all possible emotional "
    "states of the character. The character's emotional state is happy, sad, angry, surprise, "
    "worried, neutral, fear, disgust, excited. Inner brow raiser, outer brow raiser, brow "
    "lowerer, upper lid raiser, cheek raiser, lid tightener, nose wrinkler, upper lip raiser, lip "
    "corner puller, dimpler, lip corner depressor, chin raiser, lip stretcher, lip tightener, lips "
    "part, jaw drop, blink (intensity: 1.25), the person smiles, frowns, looks down, speaks "
    "loudly, raises the eyebrows, opens the mouth, I am fine, what happened, really, today."
)


def build_tiny_tokenizer(out_dir: Path, extra_texts: Iterable[str] = (), vocab_size: int = 512):
    """Train a byte-level BPE on ``BASE_CORPUS`` + ``extra_texts`` and save it to ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([BASE_CORPUS, *extra_texts], trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN)
    hf_tok.save_pretrained(str(out_dir))
    return hf_tok


def build_tiny_llm(
    out_dir: Path,
    extra_texts: Iterable[str] = (),
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    initializer_range: float = 0.3,
    seed: int = 0,
) -> Path:
    """A Qwen2-style causal LM with its tokenizer, saved with ``save_pretrained``.

    ``initializer_range`` is far above the usual 0.02: with a frozen random base and a tied,
    frozen output embedding, 0.02 leaves the logits so flat that LoRA cannot make any token
    confident (the loss stays near log(vocab) even when greedy decoding is right).
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    tok = build_tiny_tokenizer(out_dir, extra_texts)
    config = Qwen2Config(
        vocab_size=len(tok) + 16,  # room for the placeholder tokens the model adds
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=2048,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    Qwen2ForCausalLM(config).save_pretrained(str(out_dir))
    return out_dir


TINY_OPEN_CLIP_CONFIG = {
    "embed_dim": 512,  # the real ViT-B/32 text feature width, so feature shapes match production
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def build_tiny_open_clip(out_dir: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write a tiny open_clip model config JSON and seeded weights.

    Returns ``(config_json, weights_path)``: use them as ``au_clip_model`` and
    ``au_clip_pretrained``. The model name open_clip registers is the JSON file's stem.
    """
    import open_clip
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config_json = out_dir / "tiny-au-clip.json"
    config_json.write_text(json.dumps(TINY_OPEN_CLIP_CONFIG, indent=2))
    open_clip.add_model_config(str(config_json))
    torch.manual_seed(seed)
    model = open_clip.create_model(config_json.stem, pretrained=None)
    weights = out_dir / "tiny-au-clip.pt"
    torch.save(model.state_dict(), weights)
    return config_json, weights


def build_tiny_clip_vision(out_dir: Path, projection_dim: int = 768, seed: int = 0) -> Path:
    """A tiny HF CLIP (vision + text) whose image features are ``projection_dim`` wide."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         vocab_size=128, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=224, patch_size=32),
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(str(out_dir))
    return Path(out_dir)


def build_tiny_hubert(out_dir: Path, hidden_size: int = 64, seed: int = 0) -> Path:
    """A tiny HF HuBERT whose hidden states are ``hidden_size`` wide (HuBERT-large: 1024)."""
    import torch
    from transformers import HubertConfig, HubertModel

    config = HubertConfig(
        hidden_size=hidden_size,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        conv_dim=(16, 16, 16, 16, 16, 16, 16),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=4,
    )
    torch.manual_seed(seed)
    HubertModel(config).save_pretrained(str(out_dir))
    return Path(out_dir)



def build_tiny_bert_config(out_dir: Path, hidden_size: int = 64, num_heads: int = 4) -> Path:
    """A folder holding only a small BERT ``config.json``, the kind ``model.qformer_config``
    points at (the Q-Formers are built from it, not loaded)."""
    from transformers import BertConfig

    out_dir = Path(out_dir)
    BertConfig(hidden_size=hidden_size, num_attention_heads=num_heads, intermediate_size=4 * hidden_size,
               num_hidden_layers=2).save_pretrained(str(out_dir))
    return out_dir
