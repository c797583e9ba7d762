import numpy as np
import pytest

from vsa_tf.data import pos_tags
from vsa_tf.data.records import ImageRecord, Sentence
from vsa_tf.data.text import Vocabulary
from vsa_tf.jobs import scnlm


def test_encode_caption_examples_aligns_tags_with_targets():
    vocabulary = Vocabulary(["a", "red", "circle"])
    tags = pos_tags.TagVocabulary()
    records = [ImageRecord("x.jpg", 0, "train", [Sentence(["a", "red", "circle", "extra"])])]
    tokens, tag_ids, image_index = scnlm.encode_caption_examples(
        records, {"x.jpg": [["DET", "ADJ", "NOUN", "NOUN"]]}, vocabulary, tags, max_words=3
    )
    np.testing.assert_array_equal(tokens, [[2, 4, 5, 6, 3]])  # START a red circle END (truncated to 3 words)
    np.testing.assert_array_equal(tag_ids, [tags.encode(["DET", "ADJ", "NOUN"]) + [pos_tags.END_TAG_ID]])
    np.testing.assert_array_equal(image_index, [0])


def test_sample_structures_pads_and_is_seeded():
    structures = [[2, 3], [4, 5, 6]]
    first = scnlm.sample_structures(structures, 5, seed=1)
    assert first.shape[0] == 5 and set(map(tuple, (row[row != 0] for row in first))) <= {(2, 3), (4, 5, 6)}
    np.testing.assert_array_equal(first, scnlm.sample_structures(structures, 5, seed=1))
    with pytest.raises(ValueError, match="no training tag sequences"):
        scnlm.sample_structures([], 1)
