"""Jobs of the alignment model (Karpathy & Fei-Fei 2015, section 3.1): train, load, retrieval, MRF snippets, figures.

A run folder follows docs/CONVENTIONS.md: `config.json` (an `AlignmentConfig` with kind "alignment"
and its `DataConfig`), `vocabulary.txt`, `model.weights.h5` (best validation R@K), `backup/`,
`history.csv`, and `retrieval_test.json` after training when the dataset has a test split.
"""

import collections
import dataclasses
import json
import os

import numpy as np

from vsa_tf.config import AlignmentConfig, DataConfig, atomic_write_text, save_config
from vsa_tf.data.validate import load_checked_data
from vsa_tf.files import atomic_save_weights
from vsa_tf.data import text as text_lib
from vsa_tf import training
from vsa_tf.align import mrf
from vsa_tf.align import snippets as snippets_lib
from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import features as features_lib
from vsa_tf.data import pipelines
from vsa_tf.data import validate
from vsa_tf.data import word_vectors as word_vectors_lib
from vsa_tf.evaluation import retrieval
from vsa_tf.evaluation.retrieval import encode_dataset
from vsa_tf.evaluation.retrieval import score_dataset
from vsa_tf.evaluation.retrieval_evaluator import RetrievalEvaluator
from vsa_tf.jobs import embedding
from vsa_tf.jobs import runs
from vsa_tf.jobs.runs import open_run
from vsa_tf.layers.backbones import Backbone
from vsa_tf.models.alignment_model import AlignmentModel
from vsa_tf.models.alignment_model import HardestNegativeWarmup
from vsa_tf.visualize.alignment import plot_alignment

CONFIG_FILE = "config.json"
VOCABULARY_FILE = "vocabulary.txt"
WEIGHTS_FILE = "model.weights.h5"
TEST_RETRIEVAL_FILE = "retrieval_test.json"
EVALUATION_BATCH_SIZE = 64

AlignmentRun = collections.namedtuple("AlignmentRun", ["model", "vocabulary", "config", "run_dir"])


def build_alignment_model(config, vocabulary_size, load_backbone_weights=True):
    """An `AlignmentModel` of an `AlignmentConfig` (weights created, not loaded).

    `load_backbone_weights=False` builds the backbone without reading `config.image.weights`: a run's
    own weights file holds every weight, so a run folder loads after that file moved or went.
    """
    image_encoder = config.image if load_backbone_weights else config.image.replace(weights=None)
    model = AlignmentModel(
        vocabulary_size=vocabulary_size,
        region_dim=config.region_dim,
        image_encoder=image_encoder,
        sentence_encoder=config.sentence_encoder,
        embedding_dim=config.embedding_dim,
        hidden_dim=config.hidden_dim,
        score=config.score,
        margin=config.margin,
        hardest_negative=config.hardest_negative,
        dropout=config.dropout,
        embedding_trainable=not (config.word_vectors and config.freeze_word_vectors),
        image_shape=config.data.image_size,
    )
    return model.build_from_dummy()


def _sentence_table(records):
    """(texts, sentence_image, (record index, sentence index) of each sentence) of `records`, in order."""
    texts, sentence_image, owners = [], [], []
    for image_index, record in enumerate(records):
        for sentence_index, sentence in enumerate(record.sentences):
            texts.append(sentence.text)
            sentence_image.append(image_index)
            owners.append((image_index, sentence_index))
    return texts, np.asarray(sentence_image, np.int64), owners


def _split_datasets(records, data_config, boxes, store, vocabulary, batch_size=EVALUATION_BATCH_SIZE):

    texts, sentence_image, owners = _sentence_table(records)
    images = pipelines.images_dataset(records, data_config.images, boxes, data_config, batch_size, features=store)
    sentences = pipelines.sentences_dataset(texts, vocabulary, data_config, batch_size)
    return images, sentences, sentence_image, owners


def _build_and_compile(config, vocabulary, store):
    """Builds the model, loads pretrained word vectors and compiles it (call inside `strategy.scope()`)."""
    model = build_alignment_model(config, vocabulary.size)
    if config.word_vectors:

        matrix, _ = word_vectors_lib.embedding_matrix(config.word_vectors, vocabulary, seed=config.seed)
        if matrix.shape[1] != config.embedding_dim:
            raise ValueError(
                f"{config.word_vectors}: vectors have {matrix.shape[1]} dimensions but embedding_dim is {config.embedding_dim}"
            )
        model.set_word_embeddings(matrix)
    model.compile_for_training(
        learning_rate=config.learning_rate,
        momentum=config.momentum,
        clip_value=config.clip_value,
        weight_decay=config.weight_decay,
        jit_compile=config.jit_compile,
        optimizer=config.optimizer,
    )
    return model


def train_alignment(config, data_config=None, run_dir=None, verbose="auto", steps_per_epoch=None, strategy="default"):
    """Trains an alignment model into `run_dir`.

    The data is read and validated first (a `ValueError` naming every problem, before anything is
    written). When `run_dir` already holds a run, the new config must equal the saved one but for
    `vsa_tf.jobs.runs.RESUMABLE_FIELDS` (epochs): the job then resumes or extends it; otherwise a
    `ValueError` names the differing fields and the old run stays untouched. Then `config.json`
    (kind "alignment", data paths made absolute) and `vocabulary.txt` (built from the train split)
    are saved, and `vsa_tf.training.fit_model` trains with backups, keeping the weights with the best
    validation R@K sum (`val_recall_sum`) as `model.weights.h5`.

    Args:
        config: an `AlignmentConfig`.
        data_config: a `DataConfig`; defaults to `config.data` (and replaces it in the saved config).
        run_dir: the run folder.
        verbose: `model.fit` verbosity.
        steps_per_epoch: optional cap on the steps of an epoch.
        strategy: "default", "mirrored", "multiworker" (`vsa_tf.training.get_strategy`) or a
            `tf.distribute.Strategy`. The model is built and compiled in its scope; `config.batch_size`
            is the global batch, split across the replicas, and the ranking loss gathers every
            replica's vectors so each sentence is ranked against the whole global batch.

    Returns:
        {"history": {key: [per-epoch values]}, "test": retrieval metrics (when there is a test split)}.
    """
    import keras


    if not isinstance(config, AlignmentConfig):
        raise ValueError(f"train_alignment needs an AlignmentConfig, received {type(config).__name__}")
    if not run_dir:
        raise ValueError(f"train_alignment needs a run folder, received {run_dir!r}")
    if data_config is not None:
        if not isinstance(data_config, DataConfig):
            raise ValueError(f"data_config must be a DataConfig, received {type(data_config).__name__}")
        config = config.replace(data=data_config)
    # The run folder records absolute paths, so the run loads from any working directory.
    config = runs.absolute_paths(config, ("word_vectors",))
    data_config = config.data
    # First: MultiWorkerMirroredStrategy must be created before TensorFlow runs any op.
    strategy = training.get_strategy(strategy) if isinstance(strategy, str) else strategy
    dataset, boxes, store = load_checked_data(data_config, config.image.mode)
    if store is not None:  # recorded, so the run folder loads without the features folder
        config = config.replace(image=config.image.replace(feature_dim=store.dims))
    train_records, val_records, test_records = (dataset.split(name) for name in ("train", "val", "test"))
    if not train_records:
        raise ValueError(f"{data_config.dataset}: the train split is empty")
    vocabulary = text_lib.Vocabulary.build(
        (sentence.tokens for record in train_records for sentence in record.sentences), min_count=data_config.min_word_count
    )
    runs.check_same_run(run_dir, config, vocabulary)

    keras.utils.set_random_seed(config.seed)
    os.makedirs(run_dir, exist_ok=True)
    save_config(config, os.path.join(run_dir, CONFIG_FILE))
    vocabulary.save(os.path.join(run_dir, VOCABULARY_FILE))

    with strategy.scope():
        model = _build_and_compile(config, vocabulary, store)

    train_batches = pipelines.ranking_dataset(
        train_records, data_config.images, boxes, vocabulary, data_config, config.batch_size,
        shuffle=True, seed=config.seed, features=store,
    )
    callbacks = []
    monitor, monitor_mode = "loss", "min"
    if val_records:
        images, sentences, sentence_image, _ = _split_datasets(val_records, data_config, boxes, store, vocabulary)
        callbacks.append(RetrievalEvaluator(images, sentences, sentence_image))
        monitor, monitor_mode = "val_recall_sum", "max"
    if config.hardest_negative:
        callbacks.append(HardestNegativeWarmup(config.warmup_epochs))
    history = training.fit_model(
        model, train_batches, None, run_dir=run_dir, epochs=config.epochs, callbacks=callbacks,
        monitor=monitor, monitor_mode=monitor_mode, steps_per_epoch=steps_per_epoch, verbose=verbose,
        strategy=strategy,
    )
    best = os.path.join(run_dir, WEIGHTS_FILE)
    if os.path.exists(best):
        model.load_weights(best)
    summary = {"history": {key: [float(value) for value in values] for key, values in dict(history).items()}}
    if test_records:
        summary["test"] = _retrieval(model, test_records, data_config, boxes, store, vocabulary)
        atomic_write_text(os.path.join(run_dir, TEST_RETRIEVAL_FILE), json.dumps(summary["test"], indent=2) + "\n")
    return summary


def load_alignment_run(run_dir):
    """Rebuilds an alignment run: `AlignmentRun(model, vocabulary, config, run_dir)` with the best weights."""
    config, vocabulary, weights = open_run(run_dir, "alignment", AlignmentConfig)
    if config.image.cached and config.image.feature_dim is None:
        # Runs saved before ImageEncoderConfig.feature_dim existed: the features folder tells.

        config = config.replace(image=config.image.replace(feature_dim=features_lib.FeatureStore(config.data.features).dims))
    model = build_alignment_model(config, vocabulary.size, load_backbone_weights=False)
    model.load_weights(weights)
    return AlignmentRun(model, vocabulary, config, run_dir)


def _retrieval(model, records, data_config, boxes, store, vocabulary):

    images, sentences, sentence_image, _ = _split_datasets(records, data_config, boxes, store, vocabulary)
    scores = score_dataset(model, images, sentences)
    return _metrics(retrieval, scores, sentence_image)


def _metrics(retrieval, scores, sentence_image):
    result = retrieval.retrieval_metrics(scores, sentence_image)
    num_images, num_sentences = scores.shape
    if num_images >= 5000:  # the COCO protocols: 5 folds of 1K test images, and the whole 5K
        result["coco_1k"] = retrieval.coco_1k_metrics(scores, sentence_image)
    result["n_images"] = int(num_images)
    result["n_sentences"] = int(num_sentences)
    return result


def _data_config_of(run, data_config):
    """The data to evaluate on: the given DataConfig, or the run's own, with the run's tensor settings."""
    run_data = run.config.data
    if data_config is None:
        return run_data
    # Boxes/words are cut the way the model was trained; only the locations (and how the captions
    # file splits, where given) come from the caller.
    given_splits = {name: getattr(data_config, name) for name in runs.SPLIT_OPTION_FIELDS if getattr(data_config, name) is not None}
    return runs.with_dataset(
        run_data,
        data_config.dataset,
        images=data_config.images or run_data.images,
        boxes=data_config.boxes if data_config.boxes is not None else run_data.boxes,
        features=data_config.features if data_config.features is not None else run_data.features,
        **given_splits,
    )


def save_backbone_weights(run_dir, out_path):
    """Saves the trained CNN of a pixel-mode alignment run as a `.weights.h5` file (atomically).

    The captioner (`CaptionConfig.backbone_weights`, with the same `backbone_filters`) and the joint
    embedding can then start from this CNN, as the paper's captioner starts from a trained CNN.

    Args:
        run_dir: a pixel-mode alignment run folder or a loaded `AlignmentRun`.
        out_path: the file to write; it must end with `.weights.h5`.
    Returns:
        `out_path`.
    """
    if not str(out_path).endswith(".weights.h5"):
        raise ValueError(f"out_path must end with .weights.h5, received {out_path!r}")
    run = load_alignment_run(run_dir) if isinstance(run_dir, (str, os.PathLike)) else run_dir
    backbones = [layer for layer in run.model._flatten_layers() if isinstance(layer, Backbone)]
    if not backbones:
        raise ValueError(f"{run.run_dir}: a {run.config.image.mode!r}-mode alignment run has no CNN to save")
    if backbones[0].architecture != "simple":
        raise ValueError(
            f"{run.run_dir}: the run's backbone is {backbones[0].architecture!r}; only the built-in 'simple' CNN is saved "
            "this way (an application backbone already comes from its own weights file)"
        )
    atomic_save_weights(backbones[0].network, out_path)
    return out_path


def retrieval_scores(run_dir, data_config=None, split="test"):
    """All image-sentence scores of a split for any retrieval-capable run.

    Returns:
        (scores np.ndarray [n_images, n_sentences], sentence_image [n_sentences], image filenames).
    """
    run = runs.load_run(run_dir)
    if not hasattr(run.model, "encode_images") or not hasattr(run.model, "encode_sentences"):
        raise ValueError(f"{run_dir}: a {runs.run_kind(run_dir)!r} run cannot rank images and sentences")
    data_config = _data_config_of(run, data_config)
    feature_mode = getattr(run.model, "feature_mode", "cached" if data_config.features else "pixels")
    dataset, boxes, store = load_checked_data(data_config, feature_mode)
    records = dataset.split(split)
    if not records:
        raise ValueError(f"{data_config.dataset}: the {split!r} split is empty")
    if runs.run_kind(run_dir) == "embedding":

        scores, sentence_image = embedding.retrieval_scores(run.model, records, run.vocabulary, data_config, boxes, store)
    else:
        images, sentences, sentence_image, _ = _split_datasets(records, data_config, boxes, store, run.vocabulary)
        scores = score_dataset(run.model, images, sentences)
    return np.asarray(scores), np.asarray(sentence_image), [record.filename for record in records]


def evaluate_retrieval(run_dir, data_config=None, split="test", json_out=None):
    """Table-1 retrieval metrics of any retrieval-capable run (alignment or joint embedding) on a split.

    Returns:
        `retrieval_metrics(...)` plus `n_images`, `n_sentences` (and `coco_1k` for >= 5,000 images);
        also written to `json_out` when given.
    """
    scores, sentence_image, _ = retrieval_scores(run_dir, data_config, split)
    result = _metrics(retrieval, scores, sentence_image)
    if json_out:
        atomic_write_text(json_out, json.dumps(result, indent=2) + "\n")
    return result


def _image_size(data_config, filename):
    from PIL import Image


    with Image.open(validate.resolve_image_path(data_config.images, filename)) as image:
        return image.size  # (width, height)


def _region_pixel_boxes(record, data_config, boxes):
    """Pixel [x0, y0, x1, y1] of the image's regions, row 0 the whole image (the pipeline's order)."""
    width, height = _image_size(data_config, record.filename)
    detector = np.zeros((0, 4), np.float32)
    if boxes is not None:
        pixel_boxes, counts = boxes_lib.padded_pixel_boxes(boxes, [record.filename], int(data_config.max_boxes))
        detector = np.asarray(pixel_boxes[0][: int(counts[0])])
    return snippets_lib.whole_image_regions(detector, width, height)


def word_region_scores(run, records, data_config, boxes=None, store=None):
    """For each sentence of `records`: (record index, sentence index, words, scores [N words, M regions]).

    `scores[j, t] = v_t . s_j` over the image's real regions (region 0 = the whole image).
    """
    images, sentences, _, owners = _split_datasets(records, data_config, boxes, store, run.vocabulary)
    region_vectors, region_mask, word_vectors, word_mask = encode_dataset(run.model, images, sentences)
    results = []
    for row, (image_index, sentence_index) in enumerate(owners):
        num_words = int(word_mask[row].sum())
        regions = region_vectors[image_index][region_mask[image_index]]  # (M, h)
        scores = word_vectors[row, :num_words] @ regions.T  # (N, M)
        words = list(records[image_index].sentences[sentence_index].tokens[:num_words])
        results.append((image_index, sentence_index, words, scores))
    return results


def align_split(run_dir, data_config=None, split="test", beta=1.0, out=None):
    """MRF-aligns every sentence of a split to its image's regions and cuts it into snippets (eqs. 10-12).

    Returns:
        the snippets list (docs/CONVENTIONS.md), also written to `out` when given.
    """
    snippets = align_split_for_betas(run_dir, data_config, split, [beta])[beta]
    if out:
        snippets_lib.write_snippets(out, snippets)
    return snippets


def align_split_for_betas(run_dir, data_config=None, split="test", betas=(0.0, 0.5, 1.0, 2.0, 5.0)):
    """Like `align_split` for several β at once: the word-region scores are computed once.

    Returns:
        {beta: snippets list}.
    """
    run = load_alignment_run(run_dir) if isinstance(run_dir, (str, os.PathLike)) else run_dir
    data_config = _data_config_of(run, data_config)
    dataset, boxes, store = load_checked_data(data_config, run.model.feature_mode)
    records = dataset.split(split)
    if not records:
        raise ValueError(f"{data_config.dataset}: the {split!r} split is empty")
    region_boxes = {}
    snippets = {beta: [] for beta in betas}
    for image_index, sentence_index, words, scores in word_region_scores(run, records, data_config, boxes, store):
        if not words:
            continue
        record = records[image_index]
        if image_index not in region_boxes:
            region_boxes[image_index] = _region_pixel_boxes(record, data_config, boxes)
        pixel_boxes = region_boxes[image_index][: scores.shape[1]]
        for beta in betas:
            assignments = mrf.mrf_align(scores, beta)
            snippets[beta].extend(
                snippets_lib.snippets_from_alignment(assignments, words, record.filename, sentence_index, pixel_boxes)
            )
    return snippets


def plot_sentence_alignment(run_dir, data_config=None, split="test", filename=None, sentence=0, beta=1.0, out="alignment.png"):
    """Figure 5 of the paper for one sentence: its image, the regions and each word coloured by its region.

    Args:
        filename: the image (dataset filename); defaults to the split's first image.
        sentence: index of the sentence within the image.

    Returns:
        `out`.
    """
    from PIL import Image


    run = load_alignment_run(run_dir) if isinstance(run_dir, (str, os.PathLike)) else run_dir
    data_config = _data_config_of(run, data_config)
    dataset, boxes, store = load_checked_data(data_config, run.model.feature_mode)
    records = dataset.split(split)
    if filename is not None:
        records = [record for record in records if record.filename == filename]
        if not records:
            raise ValueError(f"{filename!r} is not an image of the {split!r} split of {data_config.dataset}")
    if not records:
        raise ValueError(f"{data_config.dataset}: the {split!r} split is empty")
    record = records[0]
    if not 0 <= int(sentence) < len(record.sentences):
        raise ValueError(f"{record.filename} has {len(record.sentences)} sentence(s); received sentence index {sentence}")
    record = dataclasses.replace(record, sentences=[record.sentences[int(sentence)]])
    _, _, words, scores = word_region_scores(run, [record], data_config, boxes, store)[0]
    if not words:
        raise ValueError(f"{record.filename}: sentence {sentence} has no words")
    assignments = mrf.mrf_align(scores, beta)
    pixel_boxes = _region_pixel_boxes(record, data_config, boxes)[: scores.shape[1]]
    with Image.open(validate.resolve_image_path(data_config.images, record.filename)) as image:
        pixels = np.asarray(image.convert("RGB"), np.uint8)
    title = f"{record.filename}, sentence {sentence}, beta = {beta:g}"
    return plot_alignment(pixels, pixel_boxes, words, assignments, scores, out, title=title)
