import json
import os

import pytest

from vsa_tf.data import pos_tags
from vsa_tf.jobs import embedding, scnlm
from vsa_tf.jobs.run_folder import Run


def test_load_embedding_run_rejects_other_kinds(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"kind": "caption"}))
    with pytest.raises(ValueError, match="'caption' run"):
        embedding.load_embedding_run(str(tmp_path))


@pytest.mark.slow
def test_embedding_arithmetic_and_scnlm_end_to_end(tmp_path):
    from vsa_tf.config import DataConfig, EmbeddingConfig, SCNLMConfig
    from vsa_tf.data import synthetic

    world = str(tmp_path / "world")
    synthetic.generate_world(world, num_images=30, seed=0, min_side=48, max_side=56, max_objects=2, sentences_per_image=2)
    data = DataConfig(
        dataset=os.path.join(world, "dataset.json"), images=os.path.join(world, "images"), image_size=(40, 40), min_word_count=1
    )
    run = str(tmp_path / "linear")
    summary = embedding.train_embedding(
        EmbeddingConfig(data=data, encoder="linear", embedding_dim=8, batch_size=8, epochs=1), run, verbose=0
    )
    assert set(summary.test) == {"image_annotation", "image_search"}
    loaded = Run.load(run)
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
        scnlm.train_scnlm(SCNLMConfig(data=data.replace(image_size=(48, 48)), embedding_run=run), scnlm_run, verbose=0)
    scnlm.train_scnlm(
        SCNLMConfig(embedding_run=run, truth=os.path.join(world, "truth.json"), context_size=2, structure_size=1,
                    word_dim=8, tag_dim=4, factor_dim=8, batch_size=8, epochs=1),
        scnlm_run, verbose=0,
    )
    captions = scnlm.generate_scnlm_captions(scnlm_run, out=str(tmp_path / "captions.json"))
    assert captions and all(isinstance(caption, str) and caption for caption in captions.values())
    assert json.load(open(tmp_path / "captions.json")) == captions
    assert Run.load(scnlm_run).extras["tags"].size == pos_tags.TagVocabulary().size


def test_real_photo_arithmetic_picks_a_query_naming_the_old_word_and_draws_a_sheet_per_swap(tmp_path):
    from vsa_tf.config import DataConfig, EmbeddingConfig
    from vsa_tf.data import records as records_lib
    from vsa_tf.data import synthetic, text
    from vsa_tf.data.readers import read_dataset

    vocabulary = text.Vocabulary(["dog", "cat", "red", "blue", "runs"])
    sentence = lambda words: records_lib.Sentence(words.split())  # noqa: E731
    records = [
        records_lib.ImageRecord("a.jpg", 1, "test", [sentence("dog runs"), sentence("red cat")]),  # names the new word
        records_lib.ImageRecord("b.jpg", 2, "test", [sentence("dog runs"), sentence("blue runs")]),  # dog once only
        records_lib.ImageRecord("c.jpg", 3, "test", [sentence("dog runs"), sentence("a dog"), sentence("red dog")]),
    ]
    queries = embedding.arithmetic_queries(records, vocabulary, swaps=(("dog", "cat"), ("red", "blue"), ("man", "woman")))
    # dog -> cat: c.jpg (a.jpg says "cat", b.jpg says "dog" once); red -> blue: no image says red twice; man: not in the vocabulary.
    assert queries == [("c.jpg", "dog", "cat")]
    assert embedding.arithmetic_queries(records, vocabulary, swaps=(("red", "blue"),), min_sentences=1) == [("a.jpg", "red", "blue")]

    world = str(tmp_path / "world")
    synthetic.generate_world(world, num_images=30, seed=0, min_side=48, max_side=56, max_objects=2, sentences_per_image=2)
    data = DataConfig(dataset=os.path.join(world, "dataset.json"), images=os.path.join(world, "images"), image_size=(40, 40), min_word_count=1)
    run = str(tmp_path / "linear")
    embedding.train_embedding(EmbeddingConfig(data=data, encoder="linear", embedding_dim=8, batch_size=8, epochs=1), run, verbose=0)
    sheets = embedding.real_photo_arithmetic(run, data.dataset, data.images, str(tmp_path / "figures"), top=2)
    expected = embedding.arithmetic_queries(read_dataset(data.dataset).split("test"), Run.load(run).vocabulary)
    assert [(sheet["query"], sheet["minus"], sheet["plus"]) for sheet in sheets] == [(f, [old], [new]) for f, old, new in expected]
    assert expected and all(os.path.getsize(sheet["sheet"]) > 0 and len(sheet["neighbours"]) == 2 for sheet in sheets)
