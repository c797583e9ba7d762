"""Jobs of the alignment model (Karpathy & Fei-Fei 2015, section 3.1): train, load, MRF snippets, figures.

A run folder (`vsa_tf.jobs.run_folder`) holds `config.json` (an `AlignmentConfig` with kind
"alignment" and its `DataConfig`), `vocabulary.txt`, `model.weights.h5` (best validation R@K),
`backup/`, `history.csv`, and `retrieval_test.json` after training when the dataset has a test split.
Retrieval (`evaluate_retrieval`, `retrieval_scores`) lives in `vsa_tf.jobs.retrieval`, shared with
the joint embedding; it is re-exported here.
"""

import dataclasses
import os

import numpy as np
from PIL import Image

from vsa_tf.align import mrf
from vsa_tf.align import snippets as snippets_lib
from vsa_tf.config import AlignmentConfig
from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import pipelines
from vsa_tf.data import validate
from vsa_tf.data import word_vectors as word_vectors_lib
from vsa_tf.evaluation import retrieval as retrieval_metrics
from vsa_tf.evaluation.retrieval_evaluator import RetrievalEvaluator
from vsa_tf.jobs import proposal_boxes, retrieval, run_folder, trainer
from vsa_tf.jobs.builders import build_alignment_model  # noqa: F401 (the alignment job's model)
from vsa_tf.jobs.retrieval import evaluate_retrieval, retrieval_scores  # noqa: F401 (re-exported)
from vsa_tf.layers import backbones
from vsa_tf.models.alignment_model import HardestNegativeWarmup
from vsa_tf.visualize.alignment import plot_alignment

EVALUATION_BATCH_SIZE = retrieval.EVALUATION_BATCH_SIZE
# An alignment run's CNN copied into a run that starts from it (a captioner, a proposal network).
ALIGNMENT_CNN_FILE = "alignment_cnn.weights.h5"


class AlignmentTask(trainer.TrainingTask):
    """Trains an `AlignmentModel` on (image, sentence) pairs; keeps the best validation R@K sum."""

    kind = "alignment"
    config_class = AlignmentConfig
    path_fields = ("word_vectors",)

    def record_data(self, config, data):
        if data.store is None:
            return config
        # Recorded, so the run folder loads without the features folder.
        return config.replace(image=config.image.replace(feature_dim=data.store.dims))

    def build_datasets(self, run, data):
        config = run.config
        train_batches = pipelines.ranking_dataset(
            data.split("train"), config.data.images, data.boxes, run.vocabulary, config.data, config.batch_size,
            shuffle=True, seed=config.seed, features=data.store,
        )
        return train_batches, None  # validation: R@K of the `RetrievalEvaluator`, not a loss

    def build_model(self, run, train_batches):
        config = run.config
        model = build_alignment_model(config, run.vocabulary.size)
        if config.word_vectors:
            matrix, _ = word_vectors_lib.embedding_matrix(config.word_vectors, run.vocabulary, seed=config.seed)
            if matrix.shape[1] != config.embedding_dim:
                raise ValueError(
                    f"{config.word_vectors}: vectors have {matrix.shape[1]} dimensions but embedding_dim is {config.embedding_dim}"
                )
            model.set_word_embeddings(matrix)
        return model.compile_for_training(
            learning_rate=config.learning_rate, momentum=config.momentum, clip_value=config.clip_value,
            weight_decay=config.weight_decay, jit_compile=config.jit_compile, optimizer=config.optimizer,
        )

    def callbacks(self, run, data, validation_batches):
        callbacks, monitor, monitor_mode = [], "loss", "min"
        validation_records = data.split("val")
        if validation_records:
            images, sentences, sentence_image, _ = pipelines.retrieval_datasets(
                validation_records, run.config.data.images, data.boxes, run.vocabulary, run.config.data,
                EVALUATION_BATCH_SIZE, features=data.store,
            )
            callbacks.append(RetrievalEvaluator(images, sentences, sentence_image))
            monitor, monitor_mode = "val_recall_sum", "max"
        if run.config.hardest_negative:
            callbacks.append(HardestNegativeWarmup(run.config.warmup_epochs))
        return callbacks, monitor, monitor_mode

    def evaluate(self, run, data):
        return retrieval.test_split_report(run, data)


def train_alignment(config, data_config=None, run_dir=None, verbose="auto", steps_per_epoch=None, strategy="default"):
    """Trains an alignment model into `run_dir` (the `vsa_tf.jobs.trainer.train` skeleton).

    The data is read and validated first (a `ValueError` naming every problem, before anything is
    written); a `run_dir` already holding a run is resumed only with the same settings. `config.json`
    (kind "alignment", paths made absolute) and `vocabulary.txt` (the train split's words) are saved,
    and the weights with the best validation R@K sum (`val_recall_sum`) are kept as `model.weights.h5`.

    Args:
        config: an `AlignmentConfig`.
        data_config: a `DataConfig`; defaults to `config.data` (and replaces it in the saved config).
        run_dir: the run folder.
        verbose: `model.fit` verbosity.
        steps_per_epoch: optional cap on the steps of an epoch.
        strategy: "default", "mirrored", "multiworker" or a `tf.distribute.Strategy`; the ranking loss
            gathers every replica's vectors so each sentence is ranked against the whole global batch.

    Returns:
        a `vsa_tf.jobs.trainer.TrainingResult`; `.test` holds the test retrieval metrics (when there
        is a test split, also saved as `retrieval_test.json`).
    """
    return trainer.train(
        AlignmentTask(), config, run_dir, verbose=verbose, strategy=strategy, steps_per_epoch=steps_per_epoch, data_config=data_config
    )


def load_alignment_run(run_dir):
    """Rebuilds an alignment run: a `Run` whose model holds the best weights."""
    return run_folder.Run.load(run_dir, "alignment")


def image_encoder_from_alignment(alignment_run, image, folder, frozen):
    """`image` (an `ImageEncoderConfig`) reading `alignment_run`'s "simple" CNN from `folder/ALIGNMENT_CNN_FILE`.

    The run that starts from the CNN writes that file with `save_backbone_weights` before it builds its model.
    """
    return image.replace(
        backbone="simple", weights=os.path.abspath(os.path.join(folder, ALIGNMENT_CNN_FILE)), frozen=frozen,
        filters=alignment_run.config.image.filters,
    )


def save_backbone_weights(run_dir, out_path):
    """Saves the trained CNN of a pixel-mode alignment run (folder or `Run`) as a `.weights.h5` file.

    The captioner (`ImageEncoderConfig.weights`, with the same `filters`) and the joint embedding can
    then start from this CNN, as the paper's captioner starts from a trained CNN. Returns `out_path`.
    """
    if not str(out_path).endswith(".weights.h5"):
        raise ValueError(f"out_path must end with .weights.h5, received {out_path!r}")
    run = run_folder.as_run(run_dir, "alignment")
    try:
        return backbones.save_backbone_weights(run.model, out_path)
    except ValueError as error:
        raise ValueError(f"{run.folder}: a {run.config.image.mode!r}-mode alignment run: {error}") from None


def _region_pixel_boxes(record, data_config, boxes):
    """Pixel [x0, y0, x1, y1] of the image's real regions, row 0 the whole image (the pipeline's order)."""
    with Image.open(validate.resolve_image_path(data_config.images, record.filename)) as image:
        width, height = image.size
    detector = (boxes or {}).get(record.filename, np.zeros((0, 4), np.float32))
    regions, mask = boxes_lib.image_regions(detector, width, height, int(data_config.max_boxes))
    return regions[mask]


def word_region_scores(run, records, data_config, boxes=None, store=None):
    """For each sentence of `records`: (record index, sentence index, words, scores [N words, M regions]).

    `scores[j, t] = v_t . s_j` over the image's real regions (region 0 = the whole image).
    """
    images, sentences, _, owners = pipelines.retrieval_datasets(
        records, data_config.images, boxes, run.vocabulary, data_config, EVALUATION_BATCH_SIZE, features=store
    )
    region_vectors, region_mask, word_vectors, word_mask = retrieval_metrics.encode_dataset(run.model, images, sentences)
    results = []
    for row, (image_index, sentence_index) in enumerate(owners):
        num_words = int(word_mask[row].sum())
        regions = region_vectors[image_index][region_mask[image_index]]  # (M, h)
        scores = word_vectors[row, :num_words] @ regions.T  # (N, M)
        words = list(records[image_index].sentences[sentence_index].tokens[:num_words])
        results.append((image_index, sentence_index, words, scores))
    return results


def _split_of_run(run_dir, data_config, split):
    """(loaded run, its data config, the split's records, boxes, feature store) for a snippet job."""
    run = run_folder.as_run(run_dir, "alignment")
    return (run, *run_folder.split_data(run, proposal_boxes.split_data_config(run, data_config, split), split))


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
    run, data_config, records, boxes, store = _split_of_run(run_dir, data_config, split)
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
    run, data_config, records, boxes, store = _split_of_run(run_dir, data_config, split)
    if filename is not None:
        records = [record for record in records if record.filename == filename]
        if not records:
            raise ValueError(f"{filename!r} is not an image of the {split!r} split of {data_config.dataset}")
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
