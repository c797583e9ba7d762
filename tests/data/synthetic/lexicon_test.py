import pytest

from vsa_tf.data import synthetic
from vsa_tf.data.synthetic import lexicon


def test_phrase_for_object():
    obj = {"shape": "circle", "color": "orange", "size": "small"}
    assert synthetic.phrase_for_object(obj) == ["small", "orange", "circle"]
    assert synthetic.phrase_for_object(obj, include_size=False, determiner="a") == ["an", "orange", "circle"]
    assert synthetic.phrase_for_object(obj, include_color=False, determiner="the") == ["the", "small", "circle"]
    with pytest.raises(ValueError, match="'hexagon'"):
        synthetic.phrase_for_object({**obj, "shape": "hexagon"})
    with pytest.raises(ValueError, match="received 'some'"):
        synthetic.phrase_for_object(obj, determiner="some")


def test_attribute_of_word():
    assert synthetic.attribute_of_word("violet") == ("color", "purple")
    assert synthetic.attribute_of_word("big") == ("size", "large")
    assert synthetic.attribute_of_word("disk") == ("shape", "circle")
    assert synthetic.attribute_of_word("above") is None


def test_tables_agree():
    assert set(synthetic.COLORS) == set(synthetic.COLOR_VALUES) == set(synthetic.COLOR_WORDS)
    assert set(synthetic.SHAPES) == set(synthetic.SHAPE_WORDS)
    assert set(synthetic.SIZES) == set(synthetic.SIZE_WORDS) == set(synthetic.SIZE_RANGES)
    assert set(synthetic.RELATIONS) == set(synthetic.RELATION_PHRASES) == set(synthetic.INVERSE_RELATIONS)
    assert set(synthetic.BACKGROUNDS) == set(synthetic.BACKGROUND_WORDS)
    assert {"left", "right", "above", "below"} <= set(synthetic.RELATIONS)
    assert synthetic.RELATION_WORDS == {"left", "right", "above", "over", "below", "under", "beneath", "next", "beside"}
    assert synthetic.POS_TAGS["violet"] == "ADJ" and synthetic.POS_TAGS["plus"] == "NOUN"


def test_indefinite_article():
    assert lexicon.indefinite_article("orange") == "an"
    assert lexicon.indefinite_article("red") == "a"
