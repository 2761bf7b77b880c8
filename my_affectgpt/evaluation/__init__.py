"""Evaluation: emotion labels from free-text answers, metrics, and the scores report.

``python -m my_affectgpt.evaluation --help`` scores results files from the command line;
inference uses ``write_label_caches`` / ``score_results`` / ``record_scores`` /
``write_scores`` / ``format_table``. ``load_emotion_wheel`` reads the official MER-UniBench
wheel folder (``OfficialEmotionWheels``) or a single grouping file (``EmotionWheel``).
"""
from my_affectgpt.evaluation.label_extraction import (
    LLMLabelExtractor,
    extract_labels,
    extract_open_labels,
    predict_valence,
)
from my_affectgpt.evaluation.emotion_wheel import OfficialEmotionWheels
from my_affectgpt.evaluation.label_cache import write_label_caches
from my_affectgpt.evaluation.metrics import EmotionWheel, load_emotion_wheel
from my_affectgpt.evaluation.report import (
    format_table,
    load_scores,
    record_scores,
    score_results,
    select_best,
    write_scores,
)

__all__ = [
    "EmotionWheel",
    "LLMLabelExtractor",
    "extract_labels",
    "extract_open_labels",
    "format_table",
    "load_emotion_wheel",
    "load_scores",
    "OfficialEmotionWheels",
    "predict_valence",
    "record_scores",
    "score_results",
    "select_best",
    "write_label_caches",
    "write_scores",
]
