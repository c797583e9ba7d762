"""Caption jobs: train the multimodal RNN (full frame or regions), caption images, evaluate (Tables 2 and 3).

A caption run folder (`vsa_tf.jobs.run_folder`) holds `config.json` (a `CaptionConfig`, kind
"caption", with its `DataConfig`), `vocabulary.txt`, `model.weights.h5` (best epoch), `backup/`,
`history.csv`, and `alignment_cnn.weights.h5` when its CNN came from an alignment run (`image_pretraining/`
when that alignment run was trained by `train_captioner` itself, `CaptionConfig.image_pretraining`).
"""

import os
import re
import sys

import numpy as np
import tensorflow as tf

from vsa_tf.config import AlignmentConfig, CaptionConfig
from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import pipelines, readers
from vsa_tf.data.features import FeatureStore
from vsa_tf.evaluation import captions as caption_metrics
from vsa_tf.evaluation import retrieval
from vsa_tf.evaluation.alignment import read_truth
from vsa_tf.jobs import alignment as alignment_job
from vsa_tf.jobs import run_folder, trainer
from vsa_tf.jobs.builders import build_caption_model
from vsa_tf.models.distinct_captions_monitor import DistinctCaptionsMonitor
from vsa_tf.samplers import BeamSampler, GreedySampler

ALIGNMENT_CNN_FILE = alignment_job.ALIGNMENT_CNN_FILE
FINE_TUNE_WITHOUT_ALIGNMENT = "fine_tune_cnn trains the CNN taken from an alignment run; give cnn_from_alignment too"
IMAGE_PRETRAINING_DIR = "image_pretraining"  # the alignment run a from-scratch CNN is pretrained in
EMPTY_CAPTION = caption_metrics.EMPTY_CAPTION
# Val images whose greedy captions are checked for collapse after every epoch.
COLLAPSE_SAMPLE_IMAGES = 64


def make_sampler(config, beam=None):
    """Beam search with the run's settings (`beam` overrides `config.beam_size`; 1 means greedy)."""
    beam = config.beam_size if beam is None else int(beam)
    if beam < 1:
        raise ValueError(f"beam must be >= 1, received {beam}")
    if beam == 1:
        return GreedySampler(max_length=config.max_length)
    return BeamSampler(num_beams=beam, max_length=config.max_length, length_normalization=config.length_normalization)


def _read_data(data_config):
    if not data_config.dataset:
        raise ValueError("DataConfig.dataset is empty: give the captions file (--dataset)")
    return readers.read_data_config(data_config)


def _snippets_of(snippets, records):
    filenames = {record.filename for record in records}
    return [snippet for snippet in snippets if snippet["filename"] in filenames]


def _warn_about_cut_sentences(records, max_words, threshold=0.01):
    """One stderr line when more than `threshold` of the training sentences are longer than `max_words`.

    The pipeline keeps the first `max_words` words and appends END, so the captioner learns to end
    such sentences mid-phrase (and beam search, which favours them, writes them).
    Returns the fraction of sentences that are cut.
    """
    lengths = [len(sentence.tokens) for record in records for sentence in record.sentences]
    cut = sum(length > max_words for length in lengths) / max(len(lengths), 1)
    if cut > threshold:
        print(
            f"warning: {cut:.1%} of the training sentences are longer than data.max_words={max_words} "
            f"(longest {max(lengths)} words) and are cut before END; raise max_words to keep them whole",
            file=sys.stderr,
        )
    return cut


class CaptionTask(trainer.TrainingTask):
    """Trains a `CaptionModel` on (whole image, sentence) pairs, or on (region, snippet) pairs.

    Args:
        snippets_path: snippets JSON of region captioning (None: full frame).
        cnn_from_alignment: a pixel-mode alignment run whose CNN becomes the image side.
        fine_tune_cnn: train that CNN further instead of keeping it fixed.
    """

    kind = "caption"
    config_class = CaptionConfig

    def __init__(self, snippets_path=None, cnn_from_alignment=None, fine_tune_cnn=False):
        self.snippets_path = snippets_path
        self.cnn_from_alignment = cnn_from_alignment
        self.fine_tune_cnn = fine_tune_cnn
        self.alignment_run = None

    def prepare(self, config):
        features = config.data.features
        if self.fine_tune_cnn and self.cnn_from_alignment is None:
            raise ValueError(FINE_TUNE_WITHOUT_ALIGNMENT)
        if self.cnn_from_alignment is not None and features:
            raise ValueError("cnn_from_alignment gives the captioner a CNN on pixels; remove `features` from the data config")
        config = config.replace(image=config.image.replace(mode="cached" if features else "pixels"))
        return super().prepare(config.replace(region_captions=bool(self.snippets_path)))

    def record_data(self, config, data):
        if not self.snippets_path:
            _warn_about_cut_sentences(data.split("train"), config.data.max_words)
        feature_dim = data.store.dims if data.store is not None else None
        config = config.replace(image=config.image.replace(feature_dim=feature_dim))
        if self.cnn_from_alignment is None:
            return config
        self.alignment_run = alignment_job.load_alignment_run(self.cnn_from_alignment)
        return config.replace(image=alignment_job.image_encoder_from_alignment(
            self.alignment_run, config.image, self.folder, frozen=not self.fine_tune_cnn
        ))

    def write_files(self, run, data):
        if self.alignment_run is not None:
            alignment_job.save_backbone_weights(self.alignment_run, run.config.image.weights)

    def build_datasets(self, run, data):
        config, vocabulary = run.config, run.vocabulary
        train_records, val_records = data.split("train"), data.split("val")
        images = config.data.images
        if not self.snippets_path:
            train = pipelines.caption_dataset(
                train_records, images, vocabulary, config.data, config.batch_size, shuffle=True, seed=config.seed, features=data.store
            )
            validation = pipelines.caption_dataset(
                val_records, images, vocabulary, config.data, config.batch_size, shuffle=False, features=data.store
            ) if val_records else None
            return train, validation
        snippets = pipelines.load_snippets(self.snippets_path)
        train_snippets, val_snippets = _snippets_of(snippets, train_records), _snippets_of(snippets, val_records)
        if not train_snippets:
            raise ValueError(f"{self.snippets_path}: no snippet belongs to a train-split image of {config.data.dataset}")
        if data.store is not None:
            data.store.check_boxes(data.boxes, config.data.boxes)
            check_snippet_regions(train_snippets + val_snippets, data.boxes, config.data.max_boxes, self.snippets_path)
        train = pipelines.region_caption_dataset(
            train_snippets, train_records, images, vocabulary, config.data, config.batch_size, shuffle=True, seed=config.seed,
            features=data.store,
        )
        validation = pipelines.region_caption_dataset(
            val_snippets, val_records, images, vocabulary, config.data, config.batch_size, shuffle=False, features=data.store
        ) if val_snippets else None
        return train, validation

    def build_model(self, run, train_batches):
        config = run.config
        model = build_caption_model(config, run.vocabulary.size).build_from_dummy()
        model.compile_for_training(
            learning_rate=config.learning_rate, rho=config.rho, clip_value=config.clip_value, jit_compile=config.jit_compile
        )
        return model

    def callbacks(self, run, data, validation_batches):
        callbacks, monitor, monitor_mode = super().callbacks(run, data, validation_batches)
        sample = _collapse_sample(data.split("val") or data.split("train"), run.config.data, data.store, self.snippets_path)
        if sample is not None:
            callbacks.append(DistinctCaptionsMonitor(sample, max_length=run.config.max_length))
        return callbacks, monitor, monitor_mode


def train_captioner(
    config,
    data_config=None,
    run_dir=None,
    snippets_path=None,
    verbose="auto",
    strategy="default",
    cnn_from_alignment=None,
    fine_tune_cnn=False,
):
    """Trains the captioner on whole images, or on (region, snippet) pairs when `snippets_path` is given.

    Args:
        config: a `CaptionConfig`.
        data_config: a `DataConfig` replacing `config.data` (optional).
        run_dir: the run folder to create or resume.
        snippets_path: optional snippets JSON from `vsa-tf align`; its train-split snippets become the
            training pairs (the image side pools the snippet's box), its val-split ones the validation.
        verbose: passed to `model.fit`.
        strategy: "default", "mirrored", "multiworker" (`vsa_tf.training.get_strategy`) or a
            `tf.distribute.Strategy`; `config.batch_size` is the global batch, split across the replicas.
        cnn_from_alignment: optional pixel-mode alignment run folder whose trained CNN becomes this
            captioner's image side (the paper's captioner reads a trained CNN's features).
            Its weights are copied into the run folder (`ALIGNMENT_CNN_FILE`) and the config's image
            encoder records that file, `frozen` and the alignment run's `filters`.
        fine_tune_cnn: with `cnn_from_alignment`, train that CNN further with the captioner
            (`frozen=False`) instead of keeping it fixed. On the synthetic demo world
            (300 test images, RMSprop 3e-4) it raised CIDEr of beam 7 / greedy / nearest neighbour from
            0.786 / 0.753 / 0.670 (fixed) to 0.834 / 0.845 / 0.689.

    Without any trained CNN (pixel mode, the "simple" backbone without `image.weights`, no
    `cnn_from_alignment`) and with `config.image_pretraining == "alignment"` (the default), an alignment
    model (`image_pretraining_config`) is trained first in `run_dir/image_pretraining` and its CNN is
    kept fixed, as with `cnn_from_alignment` (on a synthetic world of a new seed, fine-tuning it at
    RMSprop 1e-3 left 1 distinct greedy caption for 64 val images after 4 epochs, keeping it fixed 38). The saved config's `image_pretraining`
    says whether that happened ("none" otherwise).

    The `vsa_tf.jobs.trainer.train` skeleton: the data is validated first, a `run_dir` already holding
    a run is resumed only with the same settings and vocabulary, and the saved config holds absolute
    data paths.

    Returns:
        a `vsa_tf.jobs.trainer.TrainingResult` whose `.run` holds the best weights (`.test` is None:
        captions are evaluated by `evaluate_captions`).
    """
    config = trainer.with_data(config, data_config)
    if fine_tune_cnn and cnn_from_alignment is None:
        raise ValueError(FINE_TUNE_WITHOUT_ALIGNMENT)
    if pretrains_cnn(config, cnn_from_alignment):
        if not run_dir:
            raise ValueError(f"Training a 'caption' run needs a run folder, received {run_dir!r}")
        cnn_from_alignment = pretrain_cnn(config, run_dir, verbose=verbose, strategy=strategy)
    elif config.image_pretraining != "none":
        _warn_without_pretraining(config, cnn_from_alignment)
        config = config.replace(image_pretraining="none")
    task = CaptionTask(snippets_path, cnn_from_alignment, fine_tune_cnn)
    return trainer.train(task, config, run_dir, verbose=verbose, strategy=strategy)


def _cnn_from_scratch(config, cnn_from_alignment):
    """Whether the captioner's CNN would start from random weights (pixels, no weights file, no alignment run)."""
    return cnn_from_alignment is None and not config.data.features and config.image.weights is None


def pretrains_cnn(config, cnn_from_alignment=None):
    """Whether `train_captioner` first trains an alignment model for `config`'s CNN (see its docstring)."""
    simple = config.image.backbone == "simple"
    return config.image_pretraining == "alignment" and simple and _cnn_from_scratch(config, cnn_from_alignment)


def _warn_without_pretraining(config, cnn_from_alignment):
    """One stderr line when an application backbone would learn from the image bias alone."""
    image = config.image
    if image.backbone != "simple" and _cnn_from_scratch(config, cnn_from_alignment):
        print(
            f"warning: the {image.backbone!r} backbone starts from random weights (no image.weights) and only the "
            "built-in 'simple' CNN is pretrained on the alignment objective; the image bias alone rarely teaches a CNN "
            "to see, so expect captions that ignore the image (give --backbone-weights or --cnn-from-alignment)",
            file=sys.stderr,
        )


def image_pretraining_config(config):
    """The `AlignmentConfig` a from-scratch captioner's CNN is pretrained with.

    The `AlignmentConfig` defaults (eqs. 1-9, Adam, early stopping) on the captioner's data (its boxes,
    when it has them, are the regions), image size and CNN (`filters`, RoIAlign `pool_size` and `pooling`),
    `image_pretraining_epochs` epochs, the captioner's seed.
    """
    if not isinstance(config, CaptionConfig):
        raise ValueError(f"image_pretraining_config needs a CaptionConfig, received {type(config).__name__}")
    image = config.image.replace(mode="pixels", normalization="none", frozen=False, weights=None, feature_dim=None)
    return AlignmentConfig(
        data=config.data, image=image, epochs=config.image_pretraining_epochs, seed=config.seed, jit_compile=config.jit_compile,
    )


def pretrain_cnn(config, run_dir, verbose="auto", strategy="default"):
    """Trains (or resumes) `image_pretraining_config(config)` in `run_dir/image_pretraining`; returns that folder."""
    folder = os.path.join(str(run_dir), IMAGE_PRETRAINING_DIR)
    print(
        f"train-caption: no trained CNN was given (image.weights, cnn_from_alignment or cached features), so an "
        f"alignment model is trained first in {folder} and its CNN kept fixed under the captioner "
        "(image_pretraining='none' skips this)",
        file=sys.stderr, flush=True,
    )
    alignment_job.train_alignment(image_pretraining_config(config), run_dir=folder, verbose=verbose, strategy=strategy)
    return folder


def _collapse_sample(records, data_config, store, snippets_path, count=COLLAPSE_SAMPLE_IMAGES):
    """The whole-image batch `DistinctCaptionsMonitor` captions after every epoch (None for region runs).

    A region captioner's captions are short phrases many regions share, so its distinct fraction says
    little; the full-frame captioner's says whether captions depend on the image at all.
    """
    if snippets_path or not records:
        return None
    dataset = _whole_image_dataset(records[:count], data_config, count, store)
    return next(iter(dataset))


def load_caption_run(run_dir):
    """Rebuilds a caption run: a `Run` whose model holds the best weights (the CNN's starting weights
    file, which may have moved with the run folder, is not read again)."""
    return run_folder.Run.load(run_dir, "caption")


def _decode_best(vocabulary, tokens):
    """int [B, width, L] -> the best hypothesis of each row as a string."""
    return [" ".join(vocabulary.decode(row[0])) for row in np.asarray(tokens)]


def generate_captions(run, dataset, beam=None):
    """Captions every batch of `dataset` (image side dicts) -> (list of strings, float32 [N, D] CNN features)."""
    run = run_folder.as_run(run, "caption")
    sampler = make_sampler(run.config, beam)
    captions, features = [], []
    for batch in dataset:
        tokens = run.model.generate(batch, sampler)
        captions.extend(_decode_best(run.vocabulary, tokens))
        features.append(np.asarray(run.model.image_features(batch, training=False)))
    width = run.model.feature_dim or 0
    return captions, (np.concatenate(features) if features else np.zeros((0, width), np.float32))


def _box_key(boxes_by_name, path):
    """The key of `boxes_by_name` for an image path: the path as given, else its longest trailing part.

    A boxes file is keyed by dataset filenames (`sub/a.jpg`), so `images/sub/a.jpg` finds `sub/a.jpg`,
    then `a.jpg`. Returns None when no suffix is a key.
    """
    if path in boxes_by_name:
        return path
    parts = os.path.normpath(path).replace("\\", "/").split("/")
    for begin in range(len(parts)):
        key = "/".join(parts[begin:])
        if key in boxes_by_name:
            return key
    return None


def _decode_image_file(path, image_size):
    """`pipelines.decode_and_resize` with a `ValueError` naming the file when it is not an image."""
    try:
        return pipelines.decode_and_resize(path, image_size)
    except tf.errors.OpError as error:
        # TF's message carries the op's wrapper ("{{function_node ...}} ... [Op:DecodeImage] name:"): keep the reason.
        reason = re.sub(r"\{\{.*?\}\}|\[Op:.*$", "", error.message.strip().splitlines()[-1] if error.message.strip() else "").strip()
        raise ValueError(
            f"{path}: cannot decode the image; expected a JPEG, PNG, GIF or BMP file ({reason or type(error).__name__})"
        ) from None


def _checked_pixel_boxes(boxes, key, path, source, width, height):
    """The image's boxes as lists of 4 floats, refusing degenerate boxes and boxes outside the image (as `vsa-tf validate`)."""
    pixel_boxes = np.asarray(boxes[key], np.float32).reshape(-1, 4)
    for index, box in enumerate(pixel_boxes.tolist()):
        if not (np.all(np.isfinite(box)) and box[2] > box[0] and box[3] > box[1]):
            raise ValueError(f"{source}: {key}: box {index} {box} of {path} is degenerate or not finite (need x0 < x1, y0 < y1)")
    for index, box in boxes_lib.outside_image_problems(pixel_boxes, width, height):
        raise ValueError(f"{source}: {key}: box {index} {box} lies outside the {width}x{height} image {path}")
    return [[float(value) for value in box] for box in pixel_boxes.tolist()]


def caption_images(run, image_paths, boxes=None, beam=None, batch_size=16):
    """Captions image files, whole or inside given boxes.

    Args:
        run: a run folder or a `CaptionRun` (pixel mode).
        image_paths: image files (any path; they are not dataset entries).
        boxes: optional boxes JSON path or {name: [[x0, y0, x1, y1], ...]} pixel boxes. An image's
            key is its path as given or else the longest trailing part of the path that is a key
            (`images/sub/a.jpg` finds the dataset filename `sub/a.jpg`, then `a.jpg`). An image with
            boxes gets one caption per box; an image matching no key gets one caption for the whole
            image and a warning line on stderr. Boxes must lie inside their image (as `vsa-tf validate`).
        beam: beam size (default: the run's `beam_size`; 1 = greedy).
        batch_size: images or regions per batch.
    Returns:
        list of {"image", "box" (pixel [x0, y0, x1, y1] or None), "caption", "score"}.
    Raises:
        ValueError: naming the file for a missing or undecodable image, and the image and box for a
            box outside its image.
    """
    run = run_folder.as_run(run, "caption")
    if run.config.image.mode != "pixels":
        raise ValueError(f"{run.folder}: this run was trained on cached features; captioning image files needs a pixel-mode run")
    source = "boxes"
    if isinstance(boxes, (str, os.PathLike)):
        source = os.fspath(boxes)
        boxes = boxes_lib.read_boxes(source)
    image_size = tuple(run.config.data.image_size)
    items = []  # (path, pixel box or None)
    decoded = {}  # path -> (float32 [H, W, 3] resized image, decoded height, decoded width)
    # Every image is decoded and its boxes checked before the model runs.
    for path in image_paths:
        if not os.path.isfile(path):
            raise ValueError(f"Image file not found: {path}")
        if path not in decoded:
            decoded[path] = _decode_image_file(path, image_size)
        key = _box_key(boxes, path) if boxes else None
        if key is None:
            if boxes is not None:
                print(f"warning: {path} matches no key of {source}; captioning the whole image", file=sys.stderr)
            items.append((path, None))
        else:
            _, height, width = decoded[path]
            items.extend((path, box) for box in _checked_pixel_boxes(boxes, key, path, source, int(width), int(height)))
    sampler = make_sampler(run.config, beam)
    results = []
    for begin in range(0, len(items), batch_size):
        chunk = items[begin: begin + batch_size]
        images, normalised = [], []
        for path, box in chunk:
            image, height, width = decoded[path]
            images.append(image)
            if box is None:
                normalised.append(tf.constant(boxes_lib.WHOLE_IMAGE_BOX, tf.float32))
            else:
                normalised.append(boxes_lib.normalize_boxes(tf.constant(box), height, width))
        batch = {
            "images": tf.stack(images),
            "boxes": tf.stack(normalised)[:, None, :],
            "region_mask": tf.ones([len(chunk), 1], tf.bool),
        }
        tokens, scores = run.model.generate(batch, sampler, return_scores=True)
        for (path, box), caption, score in zip(chunk, _decode_best(run.vocabulary, tokens), scores[:, 0]):
            results.append({"image": path, "box": box, "caption": caption, "score": float(score)})
    return results


def _store_of(run, data_config):
    """The `FeatureStore` a cached-mode run reads (`data_config.features`), None for a pixel-mode run."""
    cached = run.config.image.mode == "cached"
    if not cached and data_config.features:
        raise ValueError(f"{run.folder} is a pixel-mode run; evaluate it without `features` in the data config")
    if cached and not data_config.features:
        raise ValueError(f"{run.folder} was trained on cached features; give the features folder in the data config")
    return FeatureStore(data_config.features) if cached else None


def caption_records(run, records, data_config, beam=None, batch_size=16):
    """Whole-image captions of dataset ``records``, in order: a pixel-mode run reads the images under
    `data_config.images`, a cached-mode run region 0 of `data_config.features`."""
    run = run_folder.as_run(run, "caption")
    captions, _ = generate_captions(run, _whole_image_dataset(records, data_config, batch_size, _store_of(run, data_config)), beam)
    return captions


def caption_regions(run, regions, records, data_config, beam=None, batch_size=16):
    """Captions of ``regions`` ({"filename", "box"} pixel boxes of images of ``records``), in their order.

    A pixel-mode run pools each box from the image; a cached-mode run reads the box's cached feature
    (`data_config.features`, cached from the `data_config.boxes` file, which is checked) and gives None for
    a box not among them.
    """
    run = run_folder.as_run(run, "caption")
    store = _store_of(run, data_config)
    items = [dict(region, references=[""]) for region in regions]
    if store is None:
        captions, _ = generate_captions(run, _region_dataset(items, records, data_config, run.vocabulary, batch_size), beam)
        return captions
    kept = _in_record_order(_with_cached_regions(items, store, data_config), records)
    result = [None] * len(regions)
    if kept:
        dataset = _region_dataset([item for item, _ in kept], records, data_config, run.vocabulary, batch_size, store)
        for (_, position), caption in zip(kept, generate_captions(run, dataset, beam)[0]):
            result[position] = caption
    return result


def _whole_image_dataset(records, data_config, batch_size, store=None):
    # max_boxes 0: only region 0 (the whole image) is pooled.
    return pipelines.images_dataset(records, data_config.images, None, data_config.replace(max_boxes=0), batch_size, features=store)


def evaluate_captions(
    run, data_config=None, split="test", beam=None, json_out=None, batch_size=32, max_examples=20, nearest_neighbour=True
):
    """Table 2: caption metrics of the run on a split, the nearest-neighbour baseline, verbatim fraction.

    The nearest-neighbour baseline captions each test image with a sentence of the training image
    closest in CNN-feature L2 distance (the run's own image side, CNN(I)).

    Args:
        run: a run folder or a `CaptionRun`.
        data_config: the dataset to evaluate on (default: the run's).
        split: "test" or "val".
        beam: beam size (default: the run's; 1 = greedy).
        json_out: optional path of the JSON report (written atomically).
        batch_size: images per batch.
        max_examples: generated captions listed in the report.
        nearest_neighbour: whether to compute the nearest-neighbour baseline (it encodes the train split).
    Returns:
        dict with "model" and (unless disabled) "nearest_neighbour" metric dicts (`Bleu_1`..`Bleu_4`, `METEOR`, `ROUGE_L`,
        `CIDEr`), "verbatim_fraction", "distinct_fraction" (distinct captions / images: 1 / N when the
        captioner wrote one sentence for every image), "beam", "split", "num_images" and "examples". When the dataset has
        no train split (a separate val file), "nearest_neighbour" and "verbatim_fraction" are None,
        "skipped" says why, and a notice line goes to stderr.
    """
    run = run_folder.as_run(run, "caption")
    data_config = data_config or run.config.data
    dataset = _read_data(data_config)
    records, train_records = dataset.split(split), dataset.split("train")
    if not records:
        raise ValueError(f"{data_config.dataset}: the {split!r} split is empty")
    store = _store_of(run, data_config)
    candidates_list, features = generate_captions(run, _whole_image_dataset(records, data_config, batch_size, store), beam)
    train_captions = [[sentence.text for sentence in record.sentences] for record in train_records]
    neighbour_captions = None
    skipped = None
    if not train_records:
        # A separate val/test file (COCO's captions_val2014.json) is a normal input: report the model alone.
        skipped = (
            f"{data_config.dataset} has no train split: the nearest-neighbour baseline and the verbatim fraction "
            "need training sentences and are skipped"
        )
        print(f"notice: {skipped}", file=sys.stderr)
    elif nearest_neighbour:
        train_features = []
        for batch in _whole_image_dataset(train_records, data_config, batch_size, store):
            train_features.append(np.asarray(run.model.image_features(batch, training=False)))
        train_features = np.concatenate(train_features)
        neighbour_captions = caption_metrics.nearest_neighbour_captions(features, train_features, train_captions)

    references = {index: [sentence.text for sentence in record.sentences] for index, record in enumerate(records)}
    candidates = dict(enumerate(candidates_list))
    neighbours = dict(enumerate(neighbour_captions)) if neighbour_captions is not None else {}
    training_sentences = [text for captions in train_captions for text in captions]
    report = {
        "split": split,
        "beam": make_sampler(run.config, beam).width,
        "num_images": len(records),
        "model": caption_metrics.caption_scores(references, caption_metrics.non_empty(candidates)),
        "verbatim_fraction": float(caption_metrics.verbatim_fraction(candidates_list, training_sentences)) if train_records else None,
        "distinct_fraction": float(caption_metrics.distinct_fraction(candidates_list)),
        "examples": [
            {"filename": record.filename, "caption": candidates[index], "nearest_neighbour": neighbours.get(index), "references": references[index]}
            for index, record in enumerate(records[:max_examples])
        ],
    }
    if neighbours:
        report["nearest_neighbour"] = caption_metrics.caption_scores(references, neighbours)
    if skipped:
        report["nearest_neighbour"] = None
        report["skipped"] = skipped
    if json_out:
        run_folder.write_json(json_out, report, sort_keys=True)
    return report


def region_references(records, truth):
    """Region references of Table 3 from a synthetic truth dict (`evaluation.alignment.read_truth`).

    Each object of each image is a region; its references are the object's phrases in the image's
    sentences (tokens[start:end]). Returns a list of {"filename", "box", "references"} in record order.
    """
    regions = []
    for record in records:
        image = truth.get(record.filename)
        if image is None:
            continue
        phrases = {}
        for sentence, sentence_truth in zip(record.sentences, image["sentences"]):
            for phrase in sentence_truth["phrases"]:
                words = sentence.tokens[phrase["start"]: phrase["end"]]
                if words:
                    phrases.setdefault(phrase["object"], []).append(" ".join(words))
        for object_index, references in sorted(phrases.items()):
            regions.append({"filename": record.filename, "box": list(image["objects"][object_index]["box"]), "references": references})
    return regions


# A box of a snippet or of a truth region is region k of the cached features when its coordinates differ
# from the k-th box of the boxes file by at most this many pixels: snippet boxes are clipped to the image,
# file boxes are not, and validation accepts file boxes up to 1 pixel outside the image.
BOX_MATCH_PIXELS = 1.5


def _box_distance(box, other):
    return max(abs(float(a) - float(b)) for a, b in zip(box, other))


def _cached_boxes(store, data_config):
    """The boxes file of `data_config` as {filename: boxes}, checked to be the one ``store`` was cached from."""
    boxes = boxes_lib.read_boxes(data_config.boxes) if data_config.boxes else {}
    store.check_boxes(boxes, data_config.boxes)
    return boxes


def _snippet_name(number, snippet):
    where = f"sentence {snippet['sentence']}, words {snippet['start']}:{snippet['end']}" if "sentence" in snippet and "start" in snippet else ""
    return f"snippet {number} ({snippet['filename']}{', ' + where if where else ''})"


def check_snippet_regions(snippets, boxes, max_boxes, source):
    """Cached region captioning reads region `region` of the snippet's image: that region must be the snippet's box.

    Region k >= 1 of cached features is the k-th of the first ``max_boxes`` boxes of the boxes file they
    were cached from (``boxes``, filename -> pixel boxes); region 0 is the whole image. A snippet whose
    `box` is not that box (within `BOX_MATCH_PIXELS`) comes from another region set (other boxes, other proposals).

    Raises:
        ValueError: naming ``source``, the snippet (its image, sentence and words), its region and both boxes.
    """
    for number, snippet in enumerate(snippets):
        region = snippet.get("region")
        if not region:
            continue
        image_boxes = list((boxes or {}).get(snippet["filename"], []))[: int(max_boxes)]
        if region > len(image_boxes) or _box_distance(snippet["box"], image_boxes[region - 1]) > BOX_MATCH_PIXELS:
            cached = [float(value) for value in image_boxes[region - 1]] if region <= len(image_boxes) else "none"
            raise ValueError(
                f"{source}: {_snippet_name(number, snippet)} names region {region} with box {snippet['box']}, "
                f"but region {region} of the cached features is box {cached} of the data config's boxes file: "
                "the snippets come from another region set than the features (align with the same boxes or proposals)"
            )


def cached_region_indices(regions, boxes, max_boxes):
    """For each region ({"filename", "box"}), its index among the cached regions (1 + the position of the
    closest of the boxes file's first ``max_boxes`` boxes of the image within `BOX_MATCH_PIXELS`), or None
    when no box of the image is that close."""
    indices = []
    for region in regions:
        image_boxes = list((boxes or {}).get(region["filename"], []))[: int(max_boxes)]
        distances = [_box_distance(region["box"], box) for box in image_boxes]
        best = int(np.argmin(distances)) if distances else None
        indices.append(best + 1 if best is not None and distances[best] <= BOX_MATCH_PIXELS else None)
    return indices


def _with_cached_regions(regions, store, data_config):
    """(regions that have a cached feature, each with its `region` index, in record order; their positions in
    ``regions``). The cached dataset yields regions grouped by image in record order: keeping them in that order
    here is what lets the captions be zipped back onto them."""
    boxes = _cached_boxes(store, data_config)
    indices = cached_region_indices(regions, boxes, min(int(data_config.max_boxes), store.regions - 1))
    return [(dict(region, region=index), position) for position, (region, index) in enumerate(zip(regions, indices)) if index is not None]


def _in_record_order(items, records):
    """``items`` ((region, position) pairs of `_with_cached_regions`, each region of an image of ``records``)
    stably sorted by their image's record position."""
    position_of = {record.filename: position for position, record in enumerate(records)}
    return sorted(items, key=lambda item: position_of[item[0]["filename"]])


def _region_dataset(regions, records, data_config, vocabulary, batch_size, store=None):
    """The regions as R = 1 caption batches, in order: the image + the region's box (pixel mode) or the
    region's cached features (``store``; each region needs its `region` index, and the regions must be grouped
    by image in record order, the order the cached dataset yields them in)."""
    snippets = []
    for region in regions:
        snippet = {"filename": region["filename"], "words": region["references"][0].split(), "box": region["box"]}
        if store is not None:
            snippet["region"] = region["region"]
        snippets.append(snippet)
    return pipelines.region_caption_dataset(
        snippets, records, data_config.images, vocabulary, data_config, batch_size, shuffle=False, features=store
    )


def _ranking_baseline(alignment_run, regions, records, data_config, snippets, batch_size, store=None):
    """For each region, the training snippet whose words the alignment model scores highest with it."""
    loaded = run_folder.as_run(alignment_run, "alignment")
    mode = "cached" if store is not None else "pixels"
    if loaded.config.image.mode != mode:
        raise ValueError(
            f"{alignment_run}: a {loaded.config.image.mode}-mode alignment run cannot score the regions of a {mode}-mode "
            "evaluation; give an alignment run trained the same way as the caption runs"
        )
    # The alignment model sees the images at its own training size.
    data_config = data_config.replace(image_size=tuple(loaded.config.data.image_size))
    texts = sorted({" ".join(snippet["words"]) for snippet in snippets})  # load_snippets: `words` is a list
    scores = retrieval.score_matrix(*retrieval.encode_dataset(
        loaded.model,
        _region_dataset(regions, records, data_config, loaded.vocabulary, batch_size, store),
        pipelines.sentences_dataset(texts, loaded.vocabulary, data_config, batch_size),
    ))
    return [texts[index] for index in np.argmax(scores, axis=1)]


def evaluate_region_captions(
    region_run,
    truth_path,
    data_config=None,
    split="test",
    beam=None,
    full_frame_run=None,
    alignment_run=None,
    snippets_path=None,
    json_out=None,
    batch_size=32,
):
    """Table 3: BLEU (and the other coco-caption metrics) of region captions against region references.

    Compares the region model, the full-frame model fed the same regions (RoIAlign of the box) and,
    when an alignment run and the training snippets are given, the ranking baseline (the training
    snippet with the best alignment score for the region).

    Runs trained on cached features are evaluated on cached features (the data config's `features`
    and the `boxes` file they were cached from): each truth region is the cached region whose box it
    is. Regions whose box is not among the image's cached boxes are left out and counted
    (`num_regions_without_features`, a notice on stderr); to evaluate every truth region, cache
    features of the truth's own boxes (`vsa-tf truth-boxes`, then `vsa-tf cache-features --boxes`).

    Args:
        region_run: run folder (or `CaptionRun`) trained with `--snippets`.
        truth_path: a truth.json (the synthetic world's, or real phrases such as Flickr8k's).
        data_config: dataset to evaluate on (default: the region run's).
        split: split whose images' objects are the test regions.
        beam: beam size (default: each run's `beam_size`).
        full_frame_run: optional run folder of the full-frame model.
        alignment_run: optional alignment run folder for the ranking baseline.
        snippets_path: the snippets JSON whose train-split snippets the ranking baseline retrieves.
        json_out: optional JSON report path.
        batch_size: regions per batch.
    Returns:
        {"split", "num_regions", "region_model": metrics, "full_frame_model"?: metrics, "ranking_baseline"?: metrics};
        cached mode adds "num_regions_without_features".
    """
    region_run = run_folder.as_run(region_run, "caption")
    data_config = data_config or region_run.config.data
    dataset = _read_data(data_config)
    records = dataset.split(split)
    regions = region_references(records, read_truth(truth_path))
    if not regions:
        raise ValueError(f"{truth_path}: no object phrases for the {split!r} images of {data_config.dataset}")
    runs = [("region_model", region_run)]
    if full_frame_run is not None:
        runs.append(("full_frame_model", run_folder.as_run(full_frame_run, "caption")))
    modes = {run.config.image.mode for _, run in runs}
    if len(modes) > 1:
        raise ValueError(
            f"{region_run.folder} and {runs[1][1].folder} read images differently ({sorted(modes)}): compare runs trained the same way"
        )
    store = _store_of(region_run, data_config)
    report = {"split": split}
    if store is not None:
        kept = [region for region, _ in _in_record_order(_with_cached_regions(regions, store, data_config), records)]
        report["num_regions_without_features"] = len(regions) - len(kept)
        if report["num_regions_without_features"]:
            print(
                f"notice: {report['num_regions_without_features']} of {len(regions)} truth regions are not among the cached "
                f"regions of {data_config.features} (boxes {data_config.boxes}) and are left out",
                file=sys.stderr,
            )
        if not kept:
            raise ValueError(
                f"{truth_path}: no truth region of the {split!r} images is a cached region of {data_config.features} "
                f"(boxes {data_config.boxes}); cache features of the truth's boxes (`vsa-tf truth-boxes`)"
            )
        regions = kept
    references = {index: region["references"] for index, region in enumerate(regions)}
    report["num_regions"] = len(regions)
    for name, run in runs:
        captions, _ = generate_captions(run, _region_dataset(regions, records, data_config, run.vocabulary, batch_size, store), beam)
        report[name] = caption_metrics.caption_scores(references, caption_metrics.non_empty(dict(enumerate(captions))))
        report[f"{name}_examples"] = [
            {"filename": region["filename"], "box": region["box"], "caption": caption, "references": region["references"]}
            for region, caption in list(zip(regions, captions))[:20]
        ]
    if alignment_run is not None:
        if snippets_path is None:
            raise ValueError("The ranking baseline needs the training snippets (snippets_path) as well as the alignment run")
        train_snippets = _snippets_of(pipelines.load_snippets(snippets_path), dataset.split("train"))
        if not train_snippets:
            raise ValueError(f"{snippets_path}: no snippet belongs to a train-split image")
        retrieved = _ranking_baseline(alignment_run, regions, records, data_config, train_snippets, batch_size, store)
        report["ranking_baseline"] = caption_metrics.caption_scores(references, dict(enumerate(retrieved)))
    if json_out:
        run_folder.write_json(json_out, report, sort_keys=True)
    return report
