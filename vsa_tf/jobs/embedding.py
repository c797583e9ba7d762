"""Jobs of the joint embedding (Kiros et al. 2014): train, load, multimodal arithmetic.

Run folders (`vsa_tf.jobs.run_folder`): `config.json` (an `EmbeddingConfig`, kind "embedding"),
`vocabulary.txt`, `model.weights.h5` (best), `backup/`, `history.csv`, `retrieval_test.json`.
Retrieval is `vsa_tf.jobs.retrieval.evaluate_retrieval`, as for the alignment model; the SC-NLM that
generates from an embedding run is `vsa_tf.jobs.scnlm`.
"""

import json
import os

import keras
import numpy as np

from vsa_tf import regularities
from vsa_tf.config import EmbeddingConfig
from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import features as features_lib
from vsa_tf.data import pipelines, readers
from vsa_tf.data import text as text_lib
from vsa_tf.data import word_vectors as word_vectors_lib
from vsa_tf.jobs import retrieval, run_folder, trainer
from vsa_tf.jobs.builders import build_embedding_model
from vsa_tf.jobs.retrieval import embed_images, embed_texts, whole_image_config  # noqa: F401 (re-exported)
from vsa_tf.visualize.contact_sheet import save_contact_sheet


def load_data(data_config):
    """(CaptionDataset, boxes or None, FeatureStore or None) of a DataConfig, read without validation."""
    if not data_config.dataset:
        raise ValueError("data.dataset is empty: give the captions file (--dataset)")
    dataset = readers.read_data_config(data_config)
    boxes = boxes_lib.read_boxes(data_config.boxes) if data_config.boxes else None
    features = features_lib.FeatureStore(data_config.features) if data_config.features else None
    return dataset, boxes, features


class EmbeddingTask(trainer.TrainingTask):
    """Trains a `JointEmbeddingModel` (cached features whenever `data.features` is set, else a CNN)."""

    kind = "embedding"
    config_class = EmbeddingConfig
    path_fields = ("word_vectors",)

    def prepare(self, config):
        if config.word_vectors and config.encoder != "lstm":
            raise ValueError("pretrained word vectors (word_vectors) are used by the LSTM encoder only; encoder is 'linear'")
        # The image mode follows the data: a run trains on cached features whenever data.features is set.
        config = config.replace(image=config.image.replace(mode="cached" if config.data.features else "pixels"))
        return super().prepare(config)

    def record_data(self, config, data):
        # Their width is recorded so the run loads without the features folder.
        feature_dim = data.store.dims if data.store is not None else None
        return config.replace(image=config.image.replace(feature_dim=feature_dim))

    def build_datasets(self, run, data):
        config = run.config
        pair_config, pair_boxes = (config.data, data.boxes) if data.store is not None else (whole_image_config(config.data), None)

        def pairs(records, shuffle):
            return pipelines.ranking_dataset(
                records, pair_config.images, pair_boxes, run.vocabulary, pair_config, config.batch_size,
                shuffle=shuffle, seed=config.seed, features=data.store,
            )

        validation_records = data.split("val")
        return pairs(data.split("train"), True), (pairs(validation_records, False) if validation_records else None)

    def build_model(self, run, train_batches):
        config = run.config
        model = build_embedding_model(config, run.vocabulary.size, batch=next(iter(train_batches)))
        if config.word_vectors:
            matrix, _ = word_vectors_lib.embedding_matrix(config.word_vectors, run.vocabulary, seed=config.seed)
            if matrix.shape[1] != config.word_dim:
                raise ValueError(
                    f"{config.word_vectors} holds {matrix.shape[1]}-dimensional vectors but word_dim is {config.word_dim}; "
                    f"set --word-dim {matrix.shape[1]}"
                )
            model.sentence_encoder.set_word_vectors(matrix)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate, global_clipnorm=config.clip_norm))
        return model

    def evaluate(self, run, data):
        return retrieval.test_split_report(run, data)


def train_embedding(config, run_dir, verbose="auto", strategy="default"):
    """Trains a joint embedding into `run_dir` (the `vsa_tf.jobs.trainer.train` skeleton).

    The data is validated first (as `vsa-tf validate`); a `run_dir` that already holds a run is
    resumed only with the same settings (else a `ValueError` names the differing fields and nothing
    is written). Paths are saved absolute. `strategy`: "default", "mirrored", "multiworker" or a
    `tf.distribute.Strategy`; `config.batch_size` is the global batch and the ranking loss gathers
    every replica's vectors.

    Returns:
        a `vsa_tf.jobs.trainer.TrainingResult`; `.test` holds the test retrieval metrics.
    """
    return trainer.train(EmbeddingTask(), config, run_dir, verbose=verbose, strategy=strategy)


def load_embedding_run(run_dir):
    """Rebuilds a joint embedding run: a `Run` whose model holds the best weights."""
    return run_folder.Run.load(run_dir, "embedding")


# ---------------------------------------------------------------------------------------------
# Multimodal arithmetic


def _gallery(run, dataset_path, images, split, extra_filenames=()):
    data_config = run_folder.with_dataset(run.config.data, dataset_path, images=images or run.config.data.images)
    dataset, boxes, features = load_data(data_config)
    records = dataset.split(split)
    by_name = dataset.by_filename()
    names = {record.filename for record in records}
    for filename in extra_filenames:
        if filename not in by_name:
            raise ValueError(f"{filename!r} is not an image of {dataset_path}")
        if filename not in names:
            records.append(by_name[filename])
            names.add(filename)
    return records, embed_images(run.model, records, data_config, boxes, features), data_config


def run_arithmetic(run_dir, dataset_path, images, image, minus, plus, top=5, out=None, split="test"):
    """Neighbours of image - minus + plus among the split's images (and the query image).

    Returns {"query", "minus", "plus", "neighbours": [{"filename", "score"}], "nearest": [...], "sheet"}.
    """
    run = run_folder.as_run(run_dir, "embedding")
    records, vectors, data_config = _gallery(run, dataset_path, images, split, extra_filenames=[image])
    return _arithmetic(run, records, vectors, data_config, image, minus, plus, top, out)


def _arithmetic(run, records, vectors, data_config, image, minus, plus, top, out):
    """`run_arithmetic` over an embedded gallery (``records`` and their ``vectors``, the query among them)."""
    query_index = [record.filename for record in records].index(image)
    minus_vectors = regularities.word_vectors(run.model, run.vocabulary, list(minus))
    plus_vectors = regularities.word_vectors(run.model, run.vocabulary, list(plus))
    indices, scores = regularities.multimodal_arithmetic(vectors[query_index], minus_vectors, plus_vectors, vectors, top=top, exclude=query_index)
    nearest, nearest_scores = regularities.nearest_images(vectors[query_index][None], vectors, top=top, exclude=[query_index])
    result = {
        "query": image,
        "minus": list(minus),
        "plus": list(plus),
        "neighbours": [{"filename": records[i].filename, "score": float(s)} for i, s in zip(indices, scores)],
        "nearest": [{"filename": records[i].filename, "score": float(s)} for i, s in zip(nearest[0], nearest_scores[0])],
    }
    if out:
        root = data_config.images
        paths = [os.path.join(root, image)] + [os.path.join(root, item["filename"]) for item in result["neighbours"]]
        titles = ["query"] + [f"{item['filename']}\n{item['score']:.3f}" for item in result["neighbours"]]
        formula = f"{image} - {' - '.join(minus) or '0'} + {' + '.join(plus) or '0'}"
        result["sheet"] = save_contact_sheet(out, paths, titles, columns=len(paths), suptitle=formula)
    return result


# Word swaps of the arithmetic sheets on real photographs (Kiros et al.'s Figure: image - old word + new
# word); a swap is used when both words are in the run's vocabulary.
REAL_PHOTO_SWAPS = (("dog", "cat"), ("red", "blue"), ("man", "woman"), ("grass", "snow"), ("black", "white"), ("boy", "girl"))


def arithmetic_queries(records, vocabulary, swaps=REAL_PHOTO_SWAPS, min_sentences=2):
    """A query image for each word swap: [(filename, old, new)] in swap order.

    For a swap (old, new) with both words in ``vocabulary`` (a `Vocabulary`), the first record whose
    sentences say `old` in at least ``min_sentences`` of them and `new` in none; swaps without such an
    image (or with a word out of the vocabulary) are left out.
    """
    queries = []
    for old, new in swaps:
        if text_lib.UNKNOWN_ID in (vocabulary.id(old), vocabulary.id(new)):
            continue
        for record in records:
            token_sets = [set(sentence.tokens) for sentence in record.sentences]
            if sum(old in tokens for tokens in token_sets) >= min_sentences and not any(new in tokens for tokens in token_sets):
                queries.append((record.filename, old, new))
                break
    return queries


def real_photo_arithmetic(run_dir, dataset_path, images, out_dir, split="test", swaps=REAL_PHOTO_SWAPS, top=5):
    """Contact sheets of image - old + new (`run_arithmetic`) for the `arithmetic_queries` of ``split``.

    Returns a list of `run_arithmetic` results (each with its "sheet" PNG in ``out_dir``).
    """
    run = run_folder.as_run(run_dir, "embedding")
    records, vectors, data_config = _gallery(run, dataset_path, images, split)  # embedded once for every swap
    return [
        _arithmetic(run, records, vectors, data_config, filename, [old], [new], top, os.path.join(out_dir, f"arithmetic_{old}_{new}.png"))
        for filename, old, new in arithmetic_queries(records, run.vocabulary, swaps)
    ]


def evaluate_arithmetic(run_dir, truth_path, dataset_path=None, images=None, split="test", top=5):
    """Precision@top of colour/shape/size swaps on the synthetic world (see `vsa_tf.regularities`)."""
    run = run_folder.as_run(run_dir, "embedding")
    dataset_path = dataset_path or run.config.data.dataset
    records, vectors, _ = _gallery(run, dataset_path, images, split)
    with open(truth_path, encoding="utf-8") as stream:
        truth = json.load(stream)
    cache = {}

    def word_vector(word):
        if word not in cache:
            index = run.vocabulary.id(word)
            cache[word] = None if index == text_lib.UNKNOWN_ID else np.asarray(run.model.word_vectors(np.array([index], np.int32)))[0]
        return cache[word]

    return regularities.evaluate_synthetic_arithmetic(vectors, [record.filename for record in records], truth, word_vector, top=top)
