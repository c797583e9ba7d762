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

from vsa_tf.align import confidence_prior, mrf
from vsa_tf.align import snippets as snippets_lib
from vsa_tf.config import GROUNDING_BETAS, AlignmentConfig  # GROUNDING_BETAS: the β of a grounding table (the paper's figures: 1)
from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import pipelines
from vsa_tf.data import validate
from vsa_tf.data import word_vectors as word_vectors_lib
from vsa_tf.evaluation import alignment as alignment_metrics
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

    def prepare(self, config):
        # The image mode follows the data, as for the captioner and the joint embedding: cached features whenever
        # data.features is set (before, `train-align --features F` without `--feature-mode cached` silently trained
        # a CNN on the pixels and never read F).
        if config.data.features and config.image.mode != "cached":
            config = config.replace(image=config.image.replace(mode="cached"))
        return super().prepare(config)

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


def _split_of_run(run_dir, data_config, split, max_words=None):
    """(loaded run, its data config, the split's records, boxes, feature store) for a snippet job.

    ``max_words`` (None: the run's own) sets how many words of each sentence the scores read.
    """
    run = run_folder.as_run(run_dir, "alignment")
    resolved, records, boxes, store = run_folder.split_data(run, proposal_boxes.split_data_config(run, data_config, split), split)
    return run, (resolved if max_words is None else resolved.replace(max_words=max_words)), records, boxes, store


def align_split(run_dir, data_config=None, split="test", beta=1.0, out=None):
    """MRF-aligns every sentence of a split to its image's regions and cuts it into snippets (eqs. 10-12).

    Returns:
        the snippets list (docs/CONVENTIONS.md), also written to `out` when given.
    """
    snippets = align_split_for_betas(run_dir, data_config, split, [beta])[beta]
    if out:
        snippets_lib.write_snippets(out, snippets)
    return snippets


def align_split_for_betas(run_dir, data_config=None, split="test", betas=GROUNDING_BETAS):
    """Like `align_split` for several β at once: the word-region scores are computed once.

    Returns:
        {beta: snippets list}.
    """
    return align_split_both_label_sets(run_dir, data_config, split, betas, boxes_only=False)[0]


def align_split_both_label_sets(run_dir, data_config=None, split="test", betas=GROUNDING_BETAS, boxes_only=True):
    """`align_split_for_betas`, and (``boxes_only``) the same β with the words labelled by the image's
    boxes only (the whole image scored but not a label; `grounding_report`'s "_boxes_only" rows), from
    one computation of the word-region scores.

    Returns:
        ({beta: snippets list}, {beta: box-only snippets list}, the latter empty without ``boxes_only``).
    """
    run, data_config, records, boxes, store = _split_of_run(run_dir, data_config, split)
    sentences = _scored_sentences(run, records, data_config, boxes, store)
    return _snippets_for_betas(sentences, betas), (_snippets_for_betas(sentences, betas, boxes_only=True) if boxes_only else {})


def _scored_sentences(run, records, data_config, boxes, store):
    """[(filename, sentence index, words, scores [N, M], pixel boxes [M, 4])] of the sentences with words.

    `scores` are `word_region_scores`' (computed once for every β); row t of the boxes is region t.
    """
    region_boxes, sentences = {}, []
    for image_index, sentence_index, words, scores in word_region_scores(run, records, data_config, boxes, store):
        if not words:
            continue
        record = records[image_index]
        if image_index not in region_boxes:
            region_boxes[image_index] = _region_pixel_boxes(record, data_config, boxes)
        sentences.append((record.filename, sentence_index, words, scores, region_boxes[image_index][: scores.shape[1]]))
    return sentences


def _label_scores(scores, boxes_only):
    """(the scores the labels choose from, the region index of their column 0).

    ``boxes_only`` leaves region 0, the whole image, out of the labels when the image has boxes: a word
    is then aligned to a box even where the whole scene scores higher (phrase grounding names a box).
    """
    if boxes_only and scores.shape[1] > 1:
        return scores[:, 1:], 1
    return scores, 0


def _snippets_for_betas(sentences, betas, boxes_only=False):
    """{beta: snippets} of `_scored_sentences`' sentences, MRF-aligned at each β (``boxes_only``: `_label_scores`)."""
    snippets = {beta: [] for beta in betas}
    for filename, sentence_index, words, scores, pixel_boxes in sentences:
        label_scores, first_region = _label_scores(scores, boxes_only)
        for beta in betas:
            assignments = mrf.mrf_align(label_scores, beta) + first_region
            snippets[beta].extend(snippets_lib.snippets_from_alignment(assignments, words, filename, sentence_index, pixel_boxes))
    return snippets


def _argmax_snippets(sentences, boxes_only=False):
    """Snippets of each word's best region on its own (`argmax_t v_t . s_j`, the scores before the MRF)."""
    snippets = []
    for filename, sentence_index, words, scores, pixel_boxes in sentences:
        label_scores, first_region = _label_scores(scores, boxes_only)
        assignments = np.argmax(label_scores, axis=1) + first_region
        snippets.extend(snippets_lib.snippets_from_alignment(assignments, words, filename, sentence_index, pixel_boxes))
    return snippets


def grounding_report(run_dir, data_config=None, truth=None, split="val", betas=GROUNDING_BETAS, baseline_runs=(), seed=0,
                     iou_threshold=0.5, max_words=None, confidence_weights=(0.0,)):
    """Phrase grounding of a run on a split: MRF snippets at several β, the per-word argmax, and baselines.

    Every method is scored on the same phrases (`vsa_tf.evaluation.alignment`): the truth phrases of the
    split's sentences that lie inside the words the run reads (its `max_words`; the others are counted
    in `num_phrases_past_max_words`). A phrase is correct by its head word (its last token: the noun of
    the synthetic world's phrases, and of English noun phrases, which are head-final: "a black dog" ->
    "dog") lying in a snippet whose box has IoU >= `iou_threshold` with the phrase's box
    (`phrase_accuracy_head`), and by all its words (`phrase_accuracy_all_words`).

    The word-region scores are computed once; the MRF (eqs. 10-12) then runs once per β, and
    `argmax` labels each word with its best region on its own (the scores before the MRF, equal to
    β = 0 up to ties). The same rows with the suffix "_boxes_only" label words with the image's boxes
    only: the whole image (region 0) stays in the model's score but is not a label, so a word the whole
    scene scores highest for goes to its best box (a phrase grounded to the scene names no box; the
    whole-image baseline below says how often the scene is the phrase's box). The baselines answer from the same region set (the whole image, then the boxes
    file's or the proposals run's boxes, top `max_boxes`): `whole_image`, `largest_box`, `random_box`
    (seeded; its `expected_phrase_accuracy` is the mean over phrases of the fraction of regions that
    would be correct) and `best_box_oracle` (the ceiling of the region set). Each run of
    `baseline_runs` (e.g. the bag-of-words ablation) adds its own MRF and argmax rows (both label sets),
    named "<its folder name>:mrf_beta=<β>", aligned to the same regions.

    Args:
        run_dir: an alignment run folder or `Run`.
        data_config: a `DataConfig` giving the data locations (dataset, images, `boxes` or `proposals`,
            `features` for a cached run); None: the run's own.
        truth: a truth.json path, or its loaded object or `images` dict (`evaluation.alignment.read_truth`).
        split: the split evaluated; its images missing from the truth are left out (counted).
        betas: the MRF rewards evaluated.
        baseline_runs: other alignment run folders to score on the same phrases and regions.
        seed: seed of the random-box baseline.
        iou_threshold: minimum IoU with the phrase's box.
        max_words: words of each sentence the models read (default: each run's training `max_words`);
            the BRNN and the bag of words read any length, so a larger value reaches the phrases past it.
        confidence_weights: weights w of the detector-confidence prior (`align.confidence_prior`): each
            w > 0 adds every model row again, named "confidence=<w>:<row>", its scores
            v_t . s_j + w · σ · logit(c_t); they need a boxes file with `scores` (e.g. `vsa-tf propose`'s),
            which also adds the `most_confident_box` baseline (each image's first box). The paper's rows
            (w = 0) are always given, first; an image the file leaves out has the whole image only.

    Returns:
        a JSON-able dict: {"run", "dataset", "split", "regions": {"source", "boxes", "proposals",
        "features", "max_boxes"}, "betas", "seed", "iou_threshold", "head_word", "max_words",
        "num_images", "num_images_without_truth", "num_sentences", "num_phrases",
        "num_phrases_past_max_words", "baseline_runs", "confidence_weights", "methods": {method: {"phrase_accuracy_head",
        "phrase_accuracy_all_words", "num_phrases"}}}; `vsa_tf.evaluation.alignment.grounding_table`
        prints its table.
    """
    if truth is None:
        raise ValueError("grounding_report needs a truth file (phrase boxes), received truth=None")
    if isinstance(truth, (str, os.PathLike)):
        truth = alignment_metrics.read_truth(truth)
    betas = [float(beta) for beta in betas]
    if not betas or not all(np.isfinite(beta) and beta >= 0 for beta in betas):
        raise ValueError(f"betas must be one or more finite numbers >= 0, received {betas}")
    truth_images = truth["images"] if isinstance(truth.get("images"), dict) else truth
    proposals = data_config.proposals if data_config is not None else None

    if max_words is not None and (isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1):
        raise ValueError(f"max_words must be a positive integer or None, received {max_words!r}")
    weights = [confidence_prior.check_confidence_weight(weight) for weight in confidence_weights]
    if not weights:
        raise ValueError(f"confidence_weights must hold one or more weights (0: the paper's rows), received {confidence_weights!r}")
    weights = [0.0] + [weight for weight in dict.fromkeys(weights) if weight != 0]  # the paper's rows always, first
    run, resolved, records, boxes, store = _split_of_run(run_dir, data_config, split, max_words)
    proposals = proposals or run.config.data.proposals
    scored = [sentence for sentence in _scored_sentences(run, records, resolved, boxes, store) if sentence[0] in truth_images]
    if not scored:
        raise ValueError(f"{resolved.dataset}: none of the {split!r} split's images is in the truth file")
    lengths = {(filename, sentence): len(words) for filename, sentence, words, _, _ in scored}
    evaluated, num_past = alignment_metrics.phrases_within(truth_images, lengths)
    confidences = _region_confidences(resolved, scored) if any(weights) else None

    methods = {}

    def add_model_rows(prefix, sentences):
        for weight in weights:
            weighted = sentences if weight == 0 else [
                (filename, index, words, confidence_prior.add_confidence_prior(scores, confidences.get(filename, ()), weight), pixel_boxes)
                for filename, index, words, scores, pixel_boxes in sentences
            ]
            weight_prefix = prefix if weight == 0 else f"{prefix}confidence={weight:g}:"
            for boxes_only, suffix in ((False, ""), (True, "_boxes_only")):
                for beta, snippets in _snippets_for_betas(weighted, betas, boxes_only).items():
                    row = _grounding_row(alignment_metrics.evaluate_alignment(snippets, evaluated, iou_threshold))
                    methods[f"{weight_prefix}mrf_beta={beta:g}{suffix}"] = row
                snippets = _argmax_snippets(weighted, boxes_only)
                row = _grounding_row(alignment_metrics.evaluate_alignment(snippets, evaluated, iou_threshold))
                methods[f"{weight_prefix}argmax{suffix}"] = row

    add_model_rows("", scored)
    regions = {filename: pixel_boxes for filename, _, _, _, pixel_boxes in scored}
    answers, random_expected = alignment_metrics.baseline_phrase_boxes(
        regions, evaluated, list(lengths), seed, iou_threshold, first_box=confidences is not None
    )
    for name, phrase_boxes in answers.items():
        methods[name] = _grounding_row(alignment_metrics.evaluate_phrase_boxes(phrase_boxes, evaluated, iou_threshold))
    methods["random_box"]["expected_phrase_accuracy"] = random_expected

    # The baseline runs read the same locations (the resolved boxes file, not the proposals run again).
    baseline_data = resolved.replace(proposals=None)
    baseline_folders, names = [], set()
    for baseline in baseline_runs:
        other, other_data, other_records, other_boxes, other_store = _split_of_run(baseline, baseline_data, split, max_words)
        if [record.filename for record in other_records] != [record.filename for record in records]:
            raise ValueError(f"{other.folder}: its {split!r} split holds other images than {run.folder}'s")
        name = os.path.basename(os.path.normpath(other.folder))
        while name in names:
            name += "+"
        names.add(name)
        baseline_folders.append(os.path.abspath(other.folder))
        other_scored = [
            sentence for sentence in _scored_sentences(other, other_records, other_data, other_boxes, other_store)
            if (sentence[0], sentence[1]) in lengths
        ]
        add_model_rows(f"{name}:", other_scored)

    return {
        "run": os.path.abspath(run.folder),
        "dataset": os.path.abspath(resolved.dataset),
        "split": split,
        "regions": {
            "source": "proposals" if proposals else ("boxes" if resolved.boxes else "whole image only"),
            "boxes": os.path.abspath(resolved.boxes) if resolved.boxes else None,
            "proposals": os.path.abspath(proposals) if proposals else None,
            "features": os.path.abspath(resolved.features) if resolved.features else None,
            "max_boxes": int(resolved.max_boxes),
        },
        "betas": betas,
        "seed": int(seed),
        "iou_threshold": float(iou_threshold),
        "head_word": "the phrase's last token (end - 1)",
        "max_words": int(resolved.max_words),
        "num_images": len(regions),
        "num_images_without_truth": len({record.filename for record in records} - set(truth_images)),
        "num_sentences": len(lengths),
        "num_phrases": methods["argmax"]["num_phrases"],
        "num_phrases_past_max_words": num_past,
        "baseline_runs": baseline_folders,
        "confidence_weights": weights,
        "methods": methods,
    }


def _region_confidences(data_config, scored):
    """{filename: each box's confidence, best first} of the scored images, from the boxes file's `scores`."""
    if not data_config.boxes:
        raise ValueError("a confidence weight > 0 needs boxes with scores (a boxes file or a proposals run), received no boxes")
    confidences = boxes_lib.read_box_scores(data_config.boxes)
    for filename, _, _, scores, _ in scored:
        if scores.shape[1] > 1 and filename not in confidences:
            raise ValueError(
                f"{data_config.boxes}: a confidence weight > 0 needs each image's box scores "
                f'({{"boxes": [...], "scores": [...]}}, as `vsa-tf propose` writes), {filename!r} has none'
            )
    return confidences


def _grounding_row(result):
    """A method's row of `grounding_report` from an `evaluation.alignment` result."""
    return {
        "phrase_accuracy_head": result["phrase_accuracy"],
        "phrase_accuracy_all_words": result["phrase_accuracy_all_words"],
        "num_phrases": result["num_phrases"],
    }


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
