import json
import os

import numpy as np
import pytest

from vsa_tf.data import pos_tags
from vsa_tf.data.records import ImageRecord, Sentence
from vsa_tf.data.text import Vocabulary
from vsa_tf.jobs import embedding


def test_encode_caption_examples_aligns_tags_with_targets():
    vocabulary = Vocabulary(["a", "red", "circle"])
    tags = pos_tags.TagVocabulary()
    records = [ImageRecord("x.jpg", 0, "train", [Sentence(["a", "red", "circle", "extra"])])]
    tokens, tag_ids, image_index = embedding.encode_caption_examples(
        records, {"x.jpg": [["DET", "ADJ", "NOUN", "NOUN"]]}, vocabulary, tags, max_words=3
    )
    np.testing.assert_array_equal(tokens, [[2, 4, 5, 6, 3]])  # START a red circle END (truncated to 3 words)
    np.testing.assert_array_equal(tag_ids, [tags.encode(["DET", "ADJ", "NOUN"]) + [pos_tags.END_TAG_ID]])
    np.testing.assert_array_equal(image_index, [0])


def test_sample_structures_pads_and_is_seeded():
    structures = [[2, 3], [4, 5, 6]]
    first = embedding.sample_structures(structures, 5, seed=1)
    assert first.shape[0] == 5 and set(map(tuple, (row[row != 0] for row in first))) <= {(2, 3), (4, 5, 6)}
    np.testing.assert_array_equal(first, embedding.sample_structures(structures, 5, seed=1))
    with pytest.raises(ValueError, match="no training tag sequences"):
        embedding.sample_structures([], 1)


def test_load_embedding_run_rejects_other_kinds(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"kind": "caption"}))
    with pytest.raises(ValueError, match="'caption' run"):
        embedding.load_embedding_run(str(tmp_path))


@pytest.mark.slow
def test_embedding_arithmetic_and_scnlm_end_to_end(tmp_path):
    from vsa_tf.config import DataConfig, EmbeddingConfig, SCNLMConfig
    from vsa_tf.data import synthetic
    from vsa_tf.jobs.runs import load_run

    world = str(tmp_path / "world")
    synthetic.generate_world(world, num_images=30, seed=0, min_side=48, max_side=56, max_objects=2, sentences_per_image=2)
    data = DataConfig(
        dataset=os.path.join(world, "dataset.json"), images=os.path.join(world, "images"), image_size=(40, 40), min_word_count=1
    )
    run = str(tmp_path / "linear")
    summary = embedding.train_embedding(
        EmbeddingConfig(data=data, encoder="linear", embedding_dim=8, batch_size=8, epochs=1), run, verbose=0
    )
    assert set(summary["test"]) == {"image_annotation", "image_search"}
    loaded = load_run(run)
    assert loaded.model.encoder == "linear" and loaded.vocabulary.size > 4

    truth = json.load(open(os.path.join(world, "truth.json")))
    query = next(name for name, entry in truth["images"].items() if len(entry["objects"]) == 1)
    result = embedding.run_arithmetic(run, data.dataset, data.images, query, ["blue"], ["red"], top=3, out=str(tmp_path / "sheet.png"))
    assert len(result["neighbours"]) == 3 and query not in [item["filename"] for item in result["neighbours"]]
    assert os.path.getsize(tmp_path / "sheet.png") > 0
    precision = embedding.evaluate_arithmetic(run, os.path.join(world, "truth.json"), top=3)
    assert set(precision) == {"color", "shape", "size"}

    scnlm_run = str(tmp_path / "scnlm")
    with pytest.raises(ValueError, match=r"differs from the image size the embedding run"):
        embedding.train_scnlm(SCNLMConfig(data=data.replace(image_size=(48, 48)), embedding_run=run), scnlm_run, verbose=0)
    embedding.train_scnlm(
        SCNLMConfig(embedding_run=run, truth=os.path.join(world, "truth.json"), context_size=2, structure_size=1,
                    word_dim=8, tag_dim=4, factor_dim=8, batch_size=8, epochs=1),
        scnlm_run, verbose=0,
    )
    captions = embedding.generate_scnlm_captions(scnlm_run, out=str(tmp_path / "captions.json"))
    assert captions and all(isinstance(caption, str) and caption for caption in captions.values())
    assert json.load(open(tmp_path / "captions.json")) == captions
    assert load_run(scnlm_run).tags.size == pos_tags.TagVocabulary().size
