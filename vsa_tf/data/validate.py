"""Dataset checks run by `vsa-tf validate` and before every training job (fail fast, name the file).

`validate_dataset` collects every problem as "file: problem" and raises one `DatasetError` listing
them all: missing or undecodable images, images whose header declares more than
`image_limits.MAX_IMAGE_PIXELS` pixels (refused before decoding), empty captions, filenames escaping the image root,
boxes that are degenerate or outside their image, malformed JSON. Box keys naming no image of the
dataset are not a problem (one boxes file may cover several splits or a larger dataset): the
summary counts them.
"""

import os

import numpy as np
from PIL import Image

from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import features as features_lib
from vsa_tf.data import image_limits
from vsa_tf.data import readers
from vsa_tf.data import records as records_lib
from vsa_tf.data import text


class DatasetError(ValueError):
    """A dataset failed validation; ``problems`` lists each one as "file: problem".

    ``source``: the dataset file, named in the message's first line when known.
    """
    def __init__(self, problems, source=None):
        self.problems = list(problems)
        self.source = source
        shown = self.problems[:50]
        more = len(self.problems) - len(shown)
        of_source = f" of {source}" if source else ""
        message = f"dataset validation{of_source} found {len(self.problems)} problem(s):\n" + "\n".join(shown)
        if more:
            message += f"\n... and {more} more"
        super().__init__(message)


# Every module that opens dataset images goes through this one function (it lives in `readers`, which
# `pipelines` imports without importing this module and its feature-store check).
resolve_image_path = readers.resolve_image_path


def _image_size(path, full_decode):
    """(width, height) after checking the file decodes; raises OSError/SyntaxError/ValueError if not.

    PIL's `verify` checks a PNG's chunks and CRCs to the end, but only a JPEG's headers: a truncated
    JPEG passes it and then stops training (`jpeg::Uncompress failed`, no file name). So a JPEG is
    decoded at 1/8 scale (`draft`: libjpeg still reads every entropy-coded byte, which is what
    catches a cut file, but skips most of the inverse DCT): about 2.6 s for Flickr8k's 7,000 JPEGs
    (0.4 ms each with the files in the page cache; a full decode takes about 7 s, `verify` 1.6 s).
    """
    with Image.open(path) as image:
        size = image.size
        if image.format == "JPEG" and not full_decode:
            image.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
            image.load()
            return size
        image.verify()  # PNG: every chunk and CRC; other formats: headers
    if full_decode:
        with Image.open(path) as image:
            image.load()
    return size


def validate_dataset(dataset, image_root, boxes=None, min_word_count=5, full_decode=False):
    """Checks a dataset against its images and boxes and summarises it.

    Args:
        dataset: a `CaptionDataset`, or a path read with `readers.read_dataset`.
        image_root: folder every filename resolves inside.
        boxes: optional `{filename: [n, 4]}` from `boxes.read_boxes`, or the boxes JSON path
            (None or "" = whole images only).
        min_word_count: the vocabulary's minimum train count (for the reported size).
        full_decode: decode every image fully (by default JPEGs are decoded at 1/8 scale, which
            still catches truncated files, and other formats get PIL's `verify`).

    Returns:
        {"dataset", "images", "splits": {split: {"images", "sentences"}}, "vocabulary_size"
        (words, without the 4 reserved tokens), "min_word_count", "boxes": {"images_with_boxes",
        "min", "mean", "max", "keys_not_in_dataset"} or None}.

    Raises:
        DatasetError: listing every problem found.
    """
    source = os.fspath(dataset) if isinstance(dataset, (str, os.PathLike)) else None
    dataset = _open_dataset(dataset)
    if not os.path.isdir(image_root):
        raise DatasetError([f"{image_root}: image root folder not found"], source)
    problems = []
    boxes, boxes_source = _load_boxes(boxes, problems)
    seen_filenames, image_sizes = _check_records(dataset, image_root, full_decode, problems)
    box_counts, unused_keys = [], 0
    if boxes is not None:
        box_counts, unused_keys = _check_boxes(boxes, boxes_source, seen_filenames, image_sizes, problems)
    if problems:
        raise DatasetError(problems, source)
    return _summarise(dataset, min_word_count, boxes, box_counts, unused_keys)


def _open_dataset(dataset):
    """The `CaptionDataset` itself, or the one read from a path (an unreadable file is a `DatasetError`)."""
    if isinstance(dataset, (str, os.PathLike)):
        try:
            dataset = readers.read_dataset(os.fspath(dataset))
        except ValueError as error:
            raise DatasetError([str(error)]) from None
    return dataset


def _load_boxes(boxes, problems):
    """(boxes or None, name used in box problems); a boxes path is read and parsed, its problems appended."""
    boxes_source = "boxes"
    if isinstance(boxes, (str, os.PathLike)) and not os.fspath(boxes):
        boxes = None  # "" is an explicit "no boxes" (`--boxes none`), overriding a run's boxes
    if isinstance(boxes, (str, os.PathLike)):
        boxes_source = os.fspath(boxes)
        try:
            data = readers.load_json(boxes_source, "boxes JSON")
        except ValueError as error:
            problems.append(str(error))
            data = {}
        boxes, box_problems = boxes_lib.parse_boxes(data, source=boxes_source)
        problems.extend(box_problems)
    return boxes, boxes_source


def _check_records(dataset, image_root, full_decode, problems):
    """Checks every record and its image file; returns (filenames seen, {filename: (width, height)})."""
    seen_filenames, seen_ids = set(), {}
    image_sizes = {}
    for record in dataset.records:
        filename = record.filename
        if filename in seen_filenames:
            problems.append(f"{filename}: listed more than once in the dataset")
        seen_filenames.add(filename)
        if record.image_id in seen_ids:
            problems.append(f"{filename}: image id {record.image_id} is also used by {seen_ids[record.image_id]}")
        seen_ids.setdefault(record.image_id, filename)
        _check_record_text(record, problems)
        size = _check_image_file(image_root, filename, full_decode, problems)
        if size is not None:
            image_sizes[filename] = size
    return seen_filenames, image_sizes


def _check_record_text(record, problems):
    """Appends the problems of a record's split name and captions."""
    filename = record.filename
    if record.split not in records_lib.SPLITS + ("restval",):
        problems.append(f"{filename}: unknown split {record.split!r}; expected one of {records_lib.SPLITS}")
    if not record.sentences:
        problems.append(f"{filename}: image has no captions")
    for index, sentence in enumerate(record.sentences):
        if not sentence.tokens:
            problems.append(f"{filename}: caption {index} is empty (raw {sentence.raw!r})")


def _check_image_file(image_root, filename, full_decode, problems):
    """(width, height) of the image `filename` names, or None after appending why it cannot be used."""
    try:
        path = resolve_image_path(image_root, filename)
    except ValueError as error:
        problems.append(str(error))
        return None
    if not os.path.isfile(path):
        problems.append(f"{path}: image file not found")
        return None
    try:
        image_limits.check_image_file(path)  # a decompression bomb is refused from its header, never decoded
    except ValueError as error:
        problems.append(str(error))
        return None
    except OSError as error:
        problems.append(f"{path}: image cannot be read ({type(error).__name__}: {error})")
        return None
    try:
        return _image_size(path, full_decode)
    except Exception as error:  # PIL raises many types (OSError, SyntaxError, struct.error...)
        problems.append(f"{path}: image cannot be decoded ({type(error).__name__}: {error})")
        return None


def _check_boxes(boxes, boxes_source, seen_filenames, image_sizes, problems):
    """Checks the boxes of the dataset's images; returns (box count per such image, keys naming no image)."""
    box_counts, unused_keys = [], 0
    for filename, image_boxes in boxes.items():
        if not filename:
            problems.append(f"{boxes_source}: a key is the empty string; keys are image filenames")
            continue
        if filename not in seen_filenames:
            # One boxes file may cover more images than this dataset (COCO train+val, a subset of
            # Flickr8k): such keys are ignored, their entries still checked by parse_boxes (`_load_boxes`).
            unused_keys += 1
            continue
        box_counts.append(len(image_boxes))
        if filename in image_sizes:
            width, height = image_sizes[filename]
            for index, box in boxes_lib.outside_image_problems(image_boxes, width, height):
                problems.append(
                    f"{boxes_source}: {filename}: box {index} {box} lies outside the {width}x{height} image"
                )
    return box_counts, unused_keys


def _summarise(dataset, min_word_count, boxes, box_counts, unused_keys):
    """The summary dict `validate_dataset` returns for a dataset that passed every check."""
    counts = dataset.sentence_counts()
    vocabulary = text.Vocabulary.from_counts(records_lib.word_counts(dataset.split("train")), min_count=min_word_count)
    boxes_summary = None
    if boxes is not None:
        all_counts = box_counts + [0] * (len(dataset.records) - len(box_counts))
        boxes_summary = {
            "images_with_boxes": len(box_counts),
            "min": int(min(all_counts)) if all_counts else 0,
            "mean": float(np.mean(all_counts)) if all_counts else 0.0,
            "max": int(max(all_counts)) if all_counts else 0,
            "keys_not_in_dataset": unused_keys,
        }
    return {
        "dataset": dataset.name,
        "images": len(dataset.records),
        "splits": {split: {"images": value[0], "sentences": value[1]} for split, value in counts.items()},
        "vocabulary_size": len(vocabulary.words),
        "min_word_count": min_word_count,
        "boxes": boxes_summary,
    }


def load_checked(config):
    """Reads and validates the data of a `DataConfig` before a job writes anything.

    Returns:
        (dataset, boxes or None, summary) — `CaptionDataset`, `{filename: [n, 4]}`, the summary dict.

    Raises:
        DatasetError: listing every problem (also for an unreadable dataset or boxes file).
    """
    try:
        dataset = readers.read_data_config(config)
    except ValueError as error:
        raise DatasetError([str(error)]) from None
    summary = validate_dataset(dataset, config.images, boxes=config.boxes, min_word_count=config.min_word_count)
    boxes = boxes_lib.read_boxes(config.boxes) if config.boxes else None
    return dataset, boxes, summary


def load_checked_data(data_config, feature_mode, splits=None):
    """Reads and validates the data, as `vsa-tf validate` does: (dataset, boxes, feature store or None).

    Training and evaluation jobs call it before they write anything: a `ValueError` lists every
    problem (missing or undecodable images, empty captions, filenames escaping the image root, boxes
    outside their image, images without cached features).

    Args:
        data_config: a `DataConfig`.
        feature_mode: "pixels", or "cached" to open `data_config.features` as a `FeatureStore`.
        splits: the splits that will be read (an evaluation's one split); only their images need cached
            features. None: every image.
    """
    if not data_config.dataset:
        raise ValueError("data.dataset is empty: give the captions file (--dataset)")
    if feature_mode == "cached" and not data_config.features:
        raise ValueError("feature_mode 'cached' needs data.features (--features, a folder of cached region features)")
    dataset, boxes, _ = load_checked(data_config)
    store = None
    if feature_mode == "cached":
        store = features_lib.FeatureStore(data_config.features)
        needed = dataset.records if splits is None else [record for record in dataset.records if record.split in splits]
        missing = [record.filename for record in needed if record.filename not in store]
        if missing:
            raise ValueError(f"{data_config.features}: no cached features for {len(missing)} image(s), e.g. {missing[:5]}")
    return dataset, boxes, store
