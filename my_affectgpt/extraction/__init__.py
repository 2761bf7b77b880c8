"""Feature pre-extraction: raw media / AU texts -> float32 .npy per sample.

``cli`` (the command line of ``extract_multimodal_features_precompute.py``) -> ``runner``
(one run: sample list, resume plan, loop, report) -> ``decode`` (DataLoader workers, via
``datasets.raw_media``, the preprocessing the model's encoder path uses too) -> ``encode``
(batched frozen encoders) -> ``atomic`` (temp file + ``os.replace``). ``layout`` names the
output folders, ``samples`` reads and shards the sample list, ``report`` writes
``extraction_report.json``, ``au`` encodes AU descriptions.
"""
