"""Per-tweet features: text joining, proportions, dominant language and CMI."""

import pytest

from rlkd.data.features import (
    code_mixing_index,
    dominant_language,
    join_text,
    language_proportions,
)
from rlkd.data.tagmaps import SENTIMIX_TAG_MAPS, merge_tag_maps, pair_languages


@pytest.mark.parametrize(
    ("tokens", "text"),
    [
        (["@", "user", "hola"], "@user hola"),
        (["hola", "@", "user"], "hola @user"),
        (["@user", "hola"], "@user hola"),
        (["hola", "@"], "hola @"),
        (["@", "@", "user"], "@@ user"),
        ([], ""),
    ],
)
def test_join_text(tokens, text):
    assert join_text(tokens) == text


def test_proportions_ignore_other():
    proportions = language_proportions(["en", "es", "es", "other", "other"], ("en", "es"))

    assert proportions == {"en": pytest.approx(1 / 3), "es": pytest.approx(2 / 3), "hi": 0.0}
    assert sum(proportions.values()) == pytest.approx(1.0)


def test_proportions_without_language_tokens():
    assert language_proportions(["other"], ("en", "hi")) == {"en": 0.5, "es": 0.0, "hi": 0.5}
    assert language_proportions([], ("en", "es", "hi")) == {
        "en": pytest.approx(1 / 3),
        "es": pytest.approx(1 / 3),
        "hi": pytest.approx(1 / 3),
    }


@pytest.mark.parametrize(
    ("proportions", "pair_langs", "expected"),
    [
        ({"en": 0.6, "es": 0.4, "hi": 0.0}, ("en", "es"), "en"),
        ({"en": 0.5, "es": 0.5, "hi": 0.0}, ("en", "es"), "es"),
        ({"en": 0.5, "es": 0.0, "hi": 0.5}, ("en", "hi"), "hi"),
        # A tie outside the pair goes to the pair's language first.
        ({"en": 0.0, "es": 0.5, "hi": 0.5}, ("en", "hi"), "hi"),
        ({"en": 1 / 3, "es": 1 / 3, "hi": 1 / 3}, ("en", "es", "hi"), "es"),
    ],
)
def test_dominant_language(proportions, pair_langs, expected):
    assert dominant_language(proportions, pair_langs) == expected


@pytest.mark.parametrize(
    ("langs", "cmi"),
    [
        (["en", "en", "en"], 0.0),
        (["other", "other"], 0.0),
        ([], 0.0),
        (["en", "es"], 50.0),
        (["en", "es", "es", "other"], 100 * (1 - 2 / 3)),
        (["en", "es", "hi"], 100 * (1 - 1 / 3)),
        (["hi", "hi", "hi", "en", "other", "other"], 25.0),
    ],
)
def test_code_mixing_index(langs, cmi):
    assert code_mixing_index(langs) == pytest.approx(cmi)


def test_pair_languages():
    maps = merge_tag_maps({"tamglish": {"L1": "en", "L2": "hi"}})

    assert pair_languages("spanglish", maps) == ("en", "es")
    assert pair_languages("hinglish", maps) == ("en", "hi")
    assert pair_languages("tamglish", maps) == ("en", "hi")
    assert pair_languages("hi_en", maps) == ("en", "hi")
    assert pair_languages("my_corpus", maps) == ("en", "es", "hi")
    assert pair_languages(None, maps) == ("en", "es", "hi")


def test_merge_tag_maps_extends_builtin():
    maps = merge_tag_maps({"spanglish": {"lang3": "other"}})

    assert maps["spanglish"]["lang3"] == "other"
    assert maps["spanglish"]["lang1"] == "en"
    assert "lang3" not in SENTIMIX_TAG_MAPS["spanglish"]


def test_merge_tag_maps_invalid_code():
    with pytest.raises(ValueError, match="maps tag 'L1' to 'english'"):
        merge_tag_maps({"x": {"L1": "english"}})
