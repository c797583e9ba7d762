"""Image-sentence retrieval with any retrieval-capable run: alignment (eq. 8 scores) or joint embedding (cosine).

The trainers of both kinds report their test split through `split_scores`, and `evaluate_retrieval`
gives Table 1 for a run folder; the score matrix is computed once per call.
"""

import numpy as np

from vsa_tf.data import pipelines
from vsa_tf.evaluation import retrieval
from vsa_tf.jobs import proposal_boxes, run_folder

RETRIEVAL_KINDS = ("alignment", "embedding")
EVALUATION_BATCH_SIZE = 64


def whole_image_config(data_config):
    """The data config with no detector boxes: the joint embedding sees region 0 (the whole image) only."""
    return data_config.replace(boxes=None, max_boxes=0)


def embed_images(model, records, data_config, boxes=None, features=None, batch_size=EVALUATION_BATCH_SIZE):
    """Unit joint-space vectors float [len(records), K] of the records' whole images, in order."""
    if not records:
        return np.zeros((0, model.embedding_dim), np.float32)
    if features is None:
        data_config, boxes = whole_image_config(data_config), None  # pixel mode: only region 0 is pooled
    batches = pipelines.images_dataset(records, data_config.images, boxes, data_config, batch_size, features=features)
    return np.concatenate([np.asarray(model.embed_images(batch, training=False)) for batch in batches], axis=0)


def embed_texts(model, texts, vocabulary, data_config, batch_size=256):
    """Unit joint-space vectors float [len(texts), K] of raw sentences, in order."""
    if not texts:
        return np.zeros((0, model.embedding_dim), np.float32)
    batches = pipelines.sentences_dataset(texts, vocabulary, data_config, batch_size)
    return np.concatenate([np.asarray(model.embed_sentences(batch)) for batch in batches], axis=0)


def split_scores(run, records, data_config, boxes=None, store=None):
    """(scores float [I, S], sentence_image int64 [S]) of every image x sentence of `records`.

    Args:
        run: a loaded alignment or embedding `Run`.
        records: the split's `ImageRecord`s.
        data_config: the `DataConfig` to read them with (`Run.data_config`).
        boxes, store: the split's boxes and cached features (`validate.load_checked_data`).
    """
    if run.kind == "embedding":
        texts, sentence_image, _ = pipelines.sentence_table(records)
        image_vectors = embed_images(run.model, records, data_config, boxes, store)
        return image_vectors @ embed_texts(run.model, texts, run.vocabulary, data_config).T, sentence_image
    if run.kind != "alignment":
        raise ValueError(f"{run.folder}: a {run.kind!r} run cannot rank images and sentences; expected one of {RETRIEVAL_KINDS}")
    images, sentences, sentence_image, _ = pipelines.retrieval_datasets(
        records, data_config.images, boxes, run.vocabulary, data_config, EVALUATION_BATCH_SIZE, features=store
    )
    return retrieval.score_dataset(run.model, images, sentences), sentence_image


def test_split_report(run, data):
    """Table 1 of a trained `Run` on the test split of its `TrainingData` (None when there is no test split)."""
    test_records = data.split("test")
    if not test_records:
        return None
    scores, sentence_image = split_scores(run, test_records, run.config.data, data.boxes, data.store)
    return retrieval.retrieval_report(scores, sentence_image)


def retrieval_scores(run_dir, data_config=None, split="test"):
    """All image-sentence scores of a split for an alignment or embedding run (folder or `Run`).

    Returns:
        (scores np.ndarray [n_images, n_sentences], sentence_image [n_sentences], image filenames).
    """
    run = run_folder.as_run(run_dir, features=data_config.features if data_config is not None else None)
    if run.kind not in RETRIEVAL_KINDS:
        raise ValueError(f"{run.folder}: a {run.kind!r} run cannot rank images and sentences")
    data_config, records, boxes, store = run_folder.split_data(run, proposal_boxes.split_data_config(run, data_config, split), split)
    scores, sentence_image = split_scores(run, records, data_config, boxes, store)
    return np.asarray(scores), np.asarray(sentence_image), [record.filename for record in records]


def evaluate_retrieval(run_dir, data_config=None, split="test", json_out=None):
    """Table-1 retrieval metrics of an alignment or joint-embedding run (folder or `Run`) on a split.

    Returns:
        `evaluation.retrieval.retrieval_report`: `retrieval_metrics(...)` plus `n_images`,
        `n_sentences` (and `coco_1k` for >= 5,000 images); also written to `json_out` when given.
    """
    scores, sentence_image, _ = retrieval_scores(run_dir, data_config, split)
    report = retrieval.retrieval_report(scores, sentence_image)
    if json_out:
        run_folder.write_json(json_out, report)
    return report
