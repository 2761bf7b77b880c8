"""AU features: each sample's ``summary_description`` texts -> CLIP text features [N, 512].

The texts go through ``AUClipTextEncoder``, the encoder realtime mode uses, so pre-extracted
and realtime features of the same texts are equal.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Sequence

import numpy as np

from my_affectgpt.common.errors import UserError
from my_affectgpt.common.atomic import save_npy_atomic


class MissingAUTextsError(UserError, ValueError):
    """An AU JSON without any summary description to encode."""


def au_summary_texts(analysis, path) -> List[str]:
    """The analysis's summary texts in frame order; an error naming ``path`` when there are none."""
    texts = analysis.summary_texts
    if not texts:
        raise MissingAUTextsError(
            f"{path} has no summary_description (nor fine-grained descriptions) to encode; generate "
            "them with scripts/generate_au_descriptions.py, or leave this sample out of the AU features"
        )
    return texts


def encode_text_groups(encoder, groups: Sequence[Sequence[str]]) -> List[np.ndarray]:
    """Encode several samples' texts in one call; float32 ``[len(group), dim]`` per group."""
    flat = [text for group in groups for text in group]
    features = encoder.encode(flat).float().cpu().numpy()
    bounds = np.cumsum([0] + [len(group) for group in groups])
    return [features[start:end] for start, end in zip(bounds[:-1], bounds[1:])]


def extract_au_features(
    json_root: Path,
    dataset_folder: str,
    names: Iterable[str],
    save_dir: Path,
    clip_model: str,
    clip_pretrained: str,
    device: str = "cpu",
) -> int:
    """Encode every sample's AU descriptions with the AU CLIP text tower; returns the count.

    A library call that stops at the first unusable sample (a missing or unreadable JSON,
    no descriptions); ``extract_multimodal_features_precompute.py --modality au`` reports
    such samples and goes on instead.
    """
    from my_affectgpt.processors.au_json import AUJsonLocator, load_au_analysis
    from my_affectgpt.models.au_clip import AUClipTextEncoder

    locator = AUJsonLocator(json_root, dataset_folder)
    encoder = AUClipTextEncoder(clip_model, clip_pretrained, device=device)
    count = 0
    for name in names:
        path = locator.path(name)
        texts = au_summary_texts(load_au_analysis(path), path)
        save_npy_atomic(Path(save_dir) / f"{name}.npy", encode_text_groups(encoder, [texts])[0])
        count += 1
    return count
