import pytest

from my_affectgpt.evaluation.label_extraction import (
    LLMLabelExtractor,
    answer_list_items,
    extract_labels,
    extract_open_labels,
    parse_llm_reply,
    predict_valence,
    valence_from_labels,
)
from my_affectgpt.evaluation.lexicon import BASIC_LABELS, canonical_label, normalize_label


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The character's emotional state is happy, excited, nervous.", ["happy", "worried"]),
        ("He looks joyful. Later he is furious and shocked.", ["happy", "angry", "surprise"]),
        ("Her sadness is obvious; she seems disgusted by the news.", ["sad", "disgust"]),
        ("MELD style gold words: joy, sadness, anger, fear, disgust, surprise, neutral",
         ["happy", "sad", "angry", "worried", "disgust", "surprise", "neutral"]),
        ("He smiled happily, then spoke happily again.", ["happy"]),
        ("The weather report was long.", []),
    ],
)
def test_extract_labels_maps_synonyms_and_inflections_in_order(text, expected):
    assert extract_labels(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("He is not happy.", []),
        ("He is not happy, but sad.", ["sad"]),
        ("She does not seem to be angry; she looks joyful.", ["happy"]),
        ("He isn't angry at all.", []),
        ("Neither happy nor sad.", []),
        ("There is no sign of fear, only surprise.", ["surprise"]),
        ("Not only happy but also excited.", ["happy"]),
        ("The character's emotional state is not happy, lonely.", ["sad"]),
    ],
)
def test_negation_removes_the_negated_emotion(text, expected):
    assert extract_labels(text) == expected


def test_chinese_words_and_negation():
    assert extract_labels("他很开心，也有点惊讶") == ["happy", "surprise"]
    assert extract_labels("他并不开心，反而很担心") == ["worried"]
    assert extract_labels("他很不满和担心") == ["angry", "worried"]


def test_answer_list_keeps_open_vocabulary_words_and_reads_only_the_last_list():
    text = (
        "The character's emotional state is sad. After the reveal, "
        "the character's emotional state is Excitement, bewildered and a little anxious."
    )
    assert answer_list_items(text) == ["Excitement", "bewildered", "a little anxious"]
    assert extract_open_labels(text) == ["excited", "bewildered", "anxious"]
    assert extract_labels(text) == ["happy", "bewildered", "worried"]
    assert answer_list_items("He smiles a lot.") is None


def test_lexicon_normalisation_and_canonical_labels():
    assert normalize_label(" 'Happiness' ") == "happy"
    assert normalize_label("焦虑") == "anxious"
    assert normalize_label("Bewildered.") == "bewildered"
    assert canonical_label("joy") == "happy"
    assert canonical_label("hap") == "happy"
    assert canonical_label("fear") == "worried"
    assert canonical_label("embarrassed") is None
    assert all(canonical_label(label) == label for label in BASIC_LABELS)


def test_predicted_valence_signs():
    assert predict_valence("He is happy and excited.") == 1.0
    assert predict_valence("A negative, angry reply.") == -1.0
    assert predict_valence("She is happy but worried.") == 0.0
    assert predict_valence("He is not happy.") == 0.0
    assert predict_valence("他很伤心") == -1.0
    assert predict_valence("The character's emotional state is relieved, neutral.") == 0.5
    assert valence_from_labels(["happy", "bewildered", "sad", "sad"]) == -0.25
    assert valence_from_labels([]) == 0.0


def test_parse_llm_reply_keeps_short_comma_separated_labels():
    reply = "Joy, anxiety, the person seems to be very upset today\n\nExplanation: happy"
    assert parse_llm_reply(reply) == ["joyful", "anxious"]
    assert parse_llm_reply("") == []


def test_llm_extractor_loads_lazily_and_returns_strings(tmp_path):
    from my_affectgpt.common.tiny_models import build_tiny_llm

    model_dir = build_tiny_llm(tmp_path / "extractor", extra_texts=["emotions: happy, sad, angry"])
    extractor = LLMLabelExtractor(model_dir, max_new_tokens=8)
    assert extractor._model is None
    labels = extractor("He laughs and shouts with joy.")
    assert extractor._model is not None
    assert isinstance(labels, list)
    assert all(isinstance(label, str) and label for label in labels)
    assert extractor("He laughs and shouts with joy.") == labels  # greedy: reproducible


def test_llm_extractor_names_a_missing_model_directory(tmp_path):
    extractor = LLMLabelExtractor(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="absent"):
        extractor("text")
