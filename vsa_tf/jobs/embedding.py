"""Jobs of the joint embedding (Kiros et al. 2014): train, load, retrieval, arithmetic, SC-NLM.

Run folders follow docs/CONVENTIONS.md: `config.json` (EmbeddingConfig / SCNLMConfig, with
`kind`), `vocabulary.txt`, `model.weights.h5` (best), `backup/`, `history.csv`. An SC-NLM run also
keeps `tags.txt` (tag vocabulary) and `structures.json` (the training tag sequences that generation
samples from).
"""

import collections
import json
import os
import shutil

import numpy as np

from vsa_tf.config import EmbeddingConfig, SCNLMConfig, atomic_write_text, save_config
from vsa_tf.data import pos_tags as pos_tags_lib
from vsa_tf.data import text as text_lib
from vsa_tf.data import validate
from vsa_tf import regularities
from vsa_tf import training
from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import features as features_lib
from vsa_tf.data import pipelines
from vsa_tf.data import readers
from vsa_tf.data import word_vectors as word_vectors_lib
from vsa_tf.evaluation import captions as caption_metrics
from vsa_tf.evaluation import retrieval
from vsa_tf.jobs import runs
from vsa_tf.jobs.runs import open_run
from vsa_tf.layers.region_features import RegionFeatureExtractor
from vsa_tf.models.joint_embedding_model import JointEmbeddingModel
from vsa_tf.models.scnlm_model import SCNLMModel
from vsa_tf.visualize.contact_sheet import save_contact_sheet

CONFIG_FILE = "config.json"
VOCABULARY_FILE = "vocabulary.txt"
WEIGHTS_FILE = "model.weights.h5"
TAGS_FILE = "tags.txt"
STRUCTURES_FILE = "structures.json"

LoadedRun = collections.namedtuple("LoadedRun", ["model", "vocabulary", "config", "run_dir"])
LoadedSCNLMRun = collections.namedtuple(
    "LoadedSCNLMRun", ["model", "vocabulary", "config", "run_dir", "tags", "structures", "embedding"]
)


# ---------------------------------------------------------------------------------------------
# Data helpers


def whole_image_config(data_config):
    """The data config with no detector boxes: the joint embedding sees region 0 (the whole image) only."""
    return data_config.replace(boxes=None, max_boxes=0)


def load_data(data_config):
    """(CaptionDataset, boxes or None, FeatureStore or None) of a DataConfig."""
    if not data_config.dataset:
        raise ValueError("data.dataset is empty: give the captions file (--dataset)")
    dataset = readers.read_data_config(data_config)
    boxes = None
    if data_config.boxes:

        boxes = boxes_lib.read_boxes(data_config.boxes)
    features = None
    if data_config.features:

        features = features_lib.FeatureStore(data_config.features)
    return dataset, boxes, features


def _load_checked_data(data_config):
    """`validate.load_checked_data` in the mode a data config implies (cached when it names features)."""
    return validate.load_checked_data(data_config, "cached" if data_config.features else "pixels")


def embed_images(model, records, data_config, boxes=None, features=None, batch_size=64):
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


# ---------------------------------------------------------------------------------------------
# Joint embedding


def build_embedding_model(config, vocabulary_size):
    """A JointEmbeddingModel for `config`: cached features when data.features is set, else a CNN."""
    feature_extractor = None
    if not config.image.cached:

        feature_extractor = RegionFeatureExtractor.from_image_encoder(config.image, name="feature_extractor")
    return JointEmbeddingModel(
        vocabulary_size=vocabulary_size,
        embedding_dim=config.embedding_dim,
        word_dim=config.word_dim,
        encoder=config.encoder,
        margin=config.margin,
        feature_extractor=feature_extractor,
    )


def _build_model_on_batch(model, batch):
    model(batch)
    return model


def retrieval_scores(model, records, vocabulary, data_config, boxes=None, features=None):
    """(cosine scores [I, S], sentence_image [S]) of the records' images and sentences."""
    image_vectors = embed_images(model, records, data_config, boxes, features)
    texts, sentence_image = [], []
    for index, record in enumerate(records):
        for sentence in record.sentences:
            texts.append(sentence.text)
            sentence_image.append(index)
    sentence_vectors = embed_texts(model, texts, vocabulary, data_config)
    return image_vectors @ sentence_vectors.T, np.asarray(sentence_image, np.int64)


def train_embedding(config, run_dir, verbose="auto", strategy="default"):
    """Trains a joint embedding into `run_dir`; returns {"history", "test": retrieval metrics}.

    The data is validated first (as `vsa-tf validate`); a `run_dir` that already holds a run is
    resumed only when the new config equals the saved one but for `vsa_tf.jobs.runs.RESUMABLE_FIELDS`
    (else a `ValueError` names the differing fields and nothing is written). Paths are saved absolute.

    `strategy` is "default", "mirrored", "multiworker" (`vsa_tf.training.get_strategy`) or a
    `tf.distribute.Strategy`: the model is built and compiled in its scope, `config.batch_size` is the
    global batch (split across the replicas) and the ranking loss gathers every replica's vectors.
    """
    import keras


    if not isinstance(config, EmbeddingConfig):
        raise ValueError(f"train_embedding needs an EmbeddingConfig, received {type(config).__name__}")
    # The run folder records absolute paths, so the run loads from any working directory.
    config = runs.absolute_paths(config, ("word_vectors",))
    # First: MultiWorkerMirroredStrategy must be created before TensorFlow runs any op.
    strategy = training.get_strategy(strategy) if isinstance(strategy, str) else strategy
    keras.utils.set_random_seed(config.seed)
    dataset, boxes, features = _load_checked_data(config.data)
    # Cached features whenever data.features is set; their width is recorded so the run loads without them.
    image = config.image.replace(mode="cached", feature_dim=features.dims) if features is not None else config.image.replace(mode="pixels", feature_dim=None)
    config = config.replace(image=image)
    train_records, val_records, test_records = (dataset.split(name) for name in ("train", "val", "test"))
    if not train_records:
        raise ValueError(f"{config.data.dataset}: the train split is empty")
    vocabulary = text_lib.Vocabulary.build(
        (sentence.tokens for record in train_records for sentence in record.sentences), min_count=config.data.min_word_count
    )
    runs.check_same_run(run_dir, config, vocabulary)
    os.makedirs(run_dir, exist_ok=True)
    save_config(config, os.path.join(run_dir, CONFIG_FILE))
    vocabulary.save(os.path.join(run_dir, VOCABULARY_FILE))

    pair_config, pair_boxes = (config.data, boxes) if features is not None else (whole_image_config(config.data), None)

    def pairs(records, shuffle):
        return pipelines.ranking_dataset(
            records, pair_config.images, pair_boxes, vocabulary, pair_config, config.batch_size,
            shuffle=shuffle, seed=config.seed, features=features,
        )

    train_batches = pairs(train_records, True)
    val_batches = pairs(val_records, False) if val_records else None
    with strategy.scope():
        model = _build_model_on_batch(build_embedding_model(config, vocabulary.size), next(iter(train_batches)))
        if config.word_vectors:
            _load_word_vectors(model, vocabulary, config)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate, global_clipnorm=config.clip_norm))
    history = training.fit_model(
        model, train_batches, val_batches, run_dir=run_dir, epochs=config.epochs,
        monitor="val_loss" if val_batches is not None else "loss", verbose=verbose, strategy=strategy,
    )
    best = os.path.join(run_dir, WEIGHTS_FILE)
    if os.path.exists(best):
        model.load_weights(best)
    summary = {"history": {key: [float(value) for value in values] for key, values in dict(history).items()}}
    if test_records:
        scores, sentence_image = retrieval_scores(model, test_records, vocabulary, config.data, boxes, features)
        summary["test"] = retrieval.retrieval_metrics(scores, sentence_image)
        atomic_write_text(os.path.join(run_dir, "retrieval_test.json"), json.dumps(summary["test"], indent=2) + "\n")
    return summary


def _load_word_vectors(model, vocabulary, config):

    if config.encoder != "lstm":
        raise ValueError("pretrained word vectors (word_vectors) are used by the LSTM encoder only; encoder is 'linear'")
    matrix, hits = word_vectors_lib.embedding_matrix(config.word_vectors, vocabulary, seed=config.seed)
    if matrix.shape[1] != config.word_dim:
        raise ValueError(
            f"{config.word_vectors} holds {matrix.shape[1]}-dimensional vectors but word_dim is {config.word_dim}; "
            f"set --word-dim {matrix.shape[1]}"
        )
    model.sentence_encoder.set_word_vectors(matrix)
    return hits


def load_embedding_run(run_dir):
    """Rebuilds a joint embedding run: LoadedRun(model, vocabulary, config, run_dir)."""
    config, vocabulary, weights = open_run(run_dir, "embedding", EmbeddingConfig)
    # The run's weights file holds the CNN too: its starting weights file is not read again.
    model = build_embedding_model(config.replace(image=config.image.replace(weights=None)), vocabulary.size)
    model(_dummy_batch(config, model))
    model.load_weights(weights)
    return LoadedRun(model, vocabulary, config, run_dir)


def _dummy_batch(config, model):
    """A one-example batch that builds every weight of the model before loading weights."""
    batch = {"tokens": np.full((1, 2), 4, np.int32), "token_mask": np.ones((1, 2), bool)}
    if model.feature_extractor is None:
        feature_dim = config.image.feature_dim
        if feature_dim is None:  # runs saved before ImageEncoderConfig.feature_dim: the features folder tells

            feature_dim = features_lib.FeatureStore(config.data.features).dims
        batch["region_features"] = np.zeros((1, 1, int(feature_dim)), np.float32)
    else:
        height, width = config.data.image_size
        batch.update(
            images=np.zeros((1, height, width, 3), np.float32),
            boxes=np.array([[[0.0, 0.0, 1.0, 1.0]]], np.float32),
            region_mask=np.ones((1, 1), bool),
        )
    return batch


# ---------------------------------------------------------------------------------------------
# Multimodal arithmetic


def _gallery(run, dataset_path, images, split, extra_filenames=()):

    data_config = runs.with_dataset(run.config.data, dataset_path, images=images or run.config.data.images)
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
    run = load_embedding_run(run_dir)
    records, vectors, data_config = _gallery(run, dataset_path, images, split, extra_filenames=[image])
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


def evaluate_arithmetic(run_dir, truth_path, dataset_path=None, images=None, split="test", top=5):
    """Precision@top of colour/shape/size swaps on the synthetic world (see `vsa_tf.regularities`)."""
    run = load_embedding_run(run_dir)
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


# ---------------------------------------------------------------------------------------------
# SC-NLM


def encode_caption_examples(records, tags_by_filename, vocabulary, tag_vocabulary, max_words):
    """Arrays for SC-NLM training: tokens int32 [N, T + 2], tags int32 [N, T + 1], image_index int64 [N].

    tokens = START w_1..w_n END then 0; tags[i] is the tag of tokens[i + 1] (END tag for END, 0 padding).
    """
    tokens, tags, image_index = [], [], []
    for index, record in enumerate(records):
        for sentence, sentence_tags in zip(record.sentences, tags_by_filename[record.filename]):
            words = sentence.tokens[:max_words]
            ids = [text_lib.START_ID] + vocabulary.encode(words) + [text_lib.END_ID]
            tag_ids = tag_vocabulary.encode(list(sentence_tags[: len(words)])) + [pos_tags_lib.END_TAG_ID]
            tokens.append(ids + [text_lib.PAD_ID] * (max_words + 2 - len(ids)))
            tags.append(tag_ids + [pos_tags_lib.PAD_TAG_ID] * (max_words + 1 - len(tag_ids)))
            image_index.append(index)
    return (
        np.asarray(tokens, np.int32).reshape(-1, max_words + 2),
        np.asarray(tags, np.int32).reshape(-1, max_words + 1),
        np.asarray(image_index, np.int64),
    )


def sample_structures(structures, count, seed=0):
    """`count` tag-id sequences drawn (with replacement) from `structures`, padded with 0: int32 [count, L]."""
    if not structures:
        raise ValueError("no training tag sequences to sample structures from")
    rng = np.random.default_rng(seed)
    chosen = [structures[i] for i in rng.integers(0, len(structures), size=count)]
    length = max(len(item) for item in chosen)
    return np.asarray([list(item) + [0] * (length - len(item)) for item in chosen], np.int32).reshape(count, length)


def _scnlm_model(config, vocabulary_size, num_tags, content_dim):

    model = SCNLMModel(
        vocabulary_size=vocabulary_size, num_tags=num_tags, content_dim=content_dim,
        context_size=config.context_size, structure_size=config.structure_size, word_dim=config.word_dim,
        tag_dim=config.tag_dim, factor_dim=config.factor_dim,
    )
    model.build()
    return model


def _check_same_image_side(data_config, embedding_data, embedding_run):
    """The content vectors come from the embedding run's image encoder: feed it images as it was trained."""
    if data_config.features is None and embedding_data.features is None:
        if tuple(data_config.image_size) != tuple(embedding_data.image_size):
            raise ValueError(
                f"data.image_size {tuple(data_config.image_size)} differs from the image size the embedding run "
                f"{embedding_run} was trained with, {tuple(embedding_data.image_size)}; its image encoder gives "
                "the content vectors, so use the same size (vsa-tf train-scnlm takes it from the run when "
                "--image-size is left out)"
            )


def train_scnlm(config, run_dir, verbose="auto", strategy="default"):
    """Trains an SC-NLM on the content vectors of an embedding run; returns {"history"}.

    `strategy`: as in `train_embedding` (the batch size is the global batch, split across replicas).
    As there, the data is validated first, a folder holding a run is resumed only with the same
    settings, and the saved config holds absolute paths (the data, `embedding_run`, `truth`).
    """
    import keras
    import tensorflow as tf


    if not isinstance(config, SCNLMConfig):
        raise ValueError(f"train_scnlm needs an SCNLMConfig, received {type(config).__name__}")
    # First: MultiWorkerMirroredStrategy must be created before TensorFlow runs any op.
    strategy = training.get_strategy(strategy) if isinstance(strategy, str) else strategy
    keras.utils.set_random_seed(config.seed)
    embedding = load_embedding_run(config.embedding_run)
    data_config = config.data if config.data.dataset else embedding.config.data
    _check_same_image_side(data_config, embedding.config.data, config.embedding_run)
    config = runs.absolute_paths(config.replace(data=data_config), ("embedding_run", "truth"))
    data_config = config.data
    dataset, boxes, features = _load_checked_data(data_config)
    truth = config.truth if config.tagger == "truth" else None
    tags_by_filename = pos_tags_lib.dataset_tags(dataset, truth_path=truth)
    tag_vocabulary = pos_tags_lib.TagVocabulary()
    if not dataset.split("train"):
        raise ValueError(f"{data_config.dataset}: the train split is empty")
    runs.check_same_run(run_dir, config, embedding.vocabulary)
    os.makedirs(run_dir, exist_ok=True)
    save_config(config, os.path.join(run_dir, CONFIG_FILE))
    shutil.copyfile(os.path.join(config.embedding_run, VOCABULARY_FILE), os.path.join(run_dir, VOCABULARY_FILE))
    tag_vocabulary.save(os.path.join(run_dir, TAGS_FILE))
    vocabulary = embedding.vocabulary

    def examples(split, shuffle):
        records = dataset.split(split)
        if not records:
            return None, []
        content = embed_images(embedding.model, records, data_config, boxes, features)
        tokens, tags, image_index = encode_caption_examples(records, tags_by_filename, vocabulary, tag_vocabulary, data_config.max_words)
        batches = tf.data.Dataset.from_tensor_slices({"tokens": tokens, "tags": tags, "content": content[image_index]})
        if shuffle:
            batches = batches.shuffle(len(tokens), seed=config.seed, reshuffle_each_iteration=True)
        structures = [[int(tag) for tag in row if tag > pos_tags_lib.END_TAG_ID] for row in tags]
        return batches.batch(config.batch_size).prefetch(tf.data.AUTOTUNE), structures

    train_batches, structures = examples("train", True)
    if train_batches is None:
        raise ValueError(f"{data_config.dataset}: the train split is empty")
    val_batches, _ = examples("val", False)
    atomic_write_text(os.path.join(run_dir, STRUCTURES_FILE), json.dumps(structures) + "\n")
    with strategy.scope():
        model = _scnlm_model(config, vocabulary.size, tag_vocabulary.size, embedding.config.embedding_dim)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    history = training.fit_model(
        model, train_batches, val_batches, run_dir=run_dir, epochs=config.epochs,
        monitor="val_loss" if val_batches is not None else "loss", verbose=verbose, strategy=strategy,
    )
    return {"history": {key: [float(value) for value in values] for key, values in dict(history).items()}}


def load_scnlm_run(run_dir):
    """Rebuilds an SC-NLM run with its embedding run, tag vocabulary and training structures."""
    config, vocabulary, weights = open_run(run_dir, "scnlm", SCNLMConfig)
    embedding = load_embedding_run(config.embedding_run)
    tags = pos_tags_lib.TagVocabulary.load(os.path.join(run_dir, TAGS_FILE))
    with open(os.path.join(run_dir, STRUCTURES_FILE), encoding="utf-8") as stream:
        structures = json.load(stream)
    model = _scnlm_model(config, vocabulary.size, tags.size, embedding.config.embedding_dim)
    model.load_weights(weights)
    return LoadedSCNLMRun(model, vocabulary, config, run_dir, tags, structures, embedding)


def generate_scnlm_captions(run_dir, split="test", greedy=True, seed=0, out=None, dataset_path=None, images=None):
    """One caption per image of `split`: {filename: caption}; written as JSON to `out` when given.

    Each image gets a POS structure sampled from the training sentences' tag sequences.
    """
    run = load_scnlm_run(run_dir)
    data_config = runs.with_dataset(run.config.data, dataset_path, images=images or run.config.data.images)
    dataset, boxes, features = load_data(data_config)
    records = dataset.split(split)
    if not records:
        raise ValueError(f"{data_config.dataset}: the {split} split is empty")
    content = embed_images(run.embedding.model, records, data_config, boxes, features)
    structures = sample_structures(run.structures, len(records), seed=seed)
    words = np.asarray(run.model.generate(content, structures, greedy=greedy, seed=seed))
    captions = {record.filename: " ".join(run.vocabulary.decode(row)) for record, row in zip(records, words)}
    if out:
        atomic_write_text(out, json.dumps(captions, indent=2, sort_keys=True) + "\n")
    return captions


def evaluate_scnlm_captions(run_dir, split="test", greedy=True, seed=0, json_out=None, dataset_path=None, images=None, max_examples=20):
    """SC-NLM caption metrics (the keys of `vsa_tf.evaluation.captions.caption_scores`), beside a
    nearest-neighbour baseline in the joint space, so the report sits in one table with the
    multimodal RNN's `evaluate-captions` report.

    Returns dict with "split", "decoding", "num_images", "model", "nearest_neighbour",
    "verbatim_fraction" and "examples".
    """
    run = load_scnlm_run(run_dir)
    data_config = runs.with_dataset(run.config.data, dataset_path, images=images or run.config.data.images)
    dataset, boxes, features = load_data(data_config)
    records, train_records = dataset.split(split), dataset.split("train")
    if not records:
        raise ValueError(f"{data_config.dataset}: the {split!r} split is empty")
    content = embed_images(run.embedding.model, records, data_config, boxes, features)
    structures = sample_structures(run.structures, len(records), seed=seed)
    words = np.asarray(run.model.generate(content, structures, greedy=greedy, seed=seed))
    candidates = {index: " ".join(run.vocabulary.decode(row)) or "a" for index, row in enumerate(words)}
    references = {index: [sentence.text for sentence in record.sentences] for index, record in enumerate(records)}
    train_content = embed_images(run.embedding.model, train_records, data_config, boxes, features)
    train_captions = [[sentence.text for sentence in record.sentences] for record in train_records]
    neighbours = dict(enumerate(caption_metrics.nearest_neighbour_captions(content, train_content, train_captions)))
    report = {
        "split": split,
        "decoding": "greedy" if greedy else "sampled",
        "num_images": len(records),
        "model": caption_metrics.caption_scores(references, candidates),
        "nearest_neighbour": caption_metrics.caption_scores(references, neighbours),
        "verbatim_fraction": float(
            caption_metrics.verbatim_fraction(list(candidates.values()), [text for texts in train_captions for text in texts])
        ),
        "examples": [
            {"filename": record.filename, "caption": candidates[index], "structure": run.tags.decode(structures[index]),
             "references": references[index]}
            for index, record in enumerate(records[:max_examples])
        ],
    }
    if json_out:
        atomic_write_text(json_out, json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report
