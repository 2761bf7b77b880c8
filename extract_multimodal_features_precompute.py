#!/usr/bin/env python
"""Pre-extract frame / face / audio / AU features for a dataset.

    python extract_multimodal_features_precompute.py --dataset mercaptionplus --modality all \
        --video_root VIDEOS --face_root FACES --mer-factory-output MER_FACTORY_OUT \
        --save_root FEATURES --visual_encoder_path CLIP_DIR --acoustic_encoder_path HUBERT_DIR

Run it again to resume; ``--shard i/n`` (or torchrun) splits the samples across processes.
See ``--help`` and ``my_affectgpt/extraction/``.
"""
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    from my_affectgpt.extraction.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
