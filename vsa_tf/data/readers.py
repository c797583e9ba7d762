"""Readers for the public caption formats, all returning one `CaptionDataset`.

Formats:
- Karpathy split JSON (`dataset_flickr8k.json`, `dataset_flickr30k.json`, `dataset_coco.json`).
- Flickr8k `Flickr8k.token.txt` (`name.jpg#k<TAB>caption`) with the split files
  `Flickr_8k.trainImages.txt`, `Flickr_8k.devImages.txt`, `Flickr_8k.testImages.txt`.
- COCO captions JSON (`captions_train2014.json`: `images[].file_name/id`, `annotations[].image_id/caption`).

Every caption goes through `vsa_tf.data.text.tokenize` (the paper's preprocessing), including the
tokens Karpathy's files already carry, so training and the exported graphs see the same words.
Errors are `ValueError`s naming the file and the field.
"""

import json
import os

from vsa_tf.data import records as records_lib
from vsa_tf.data import text
from vsa_tf.config import atomic_write_text

KARPATHY_SPLITS = ("train", "val", "test", "restval")
FLICKR8K_SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "val": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}


def resolve_image_path(image_root, filename):
    """``image_root/filename``, refusing filenames that are absolute or escape the root (`..`, links).

    Every module that opens dataset images goes through this function.
    """
    if not isinstance(filename, str) or not filename:
        raise ValueError(f"image filename must be a non-empty string, received {filename!r}")
    if os.path.isabs(filename) or filename.startswith(("/", "\\")) or (len(filename) > 1 and filename[1] == ":"):
        raise ValueError(f"{filename}: absolute image paths are not allowed; filenames are relative to the image root")
    parts = filename.replace("\\", "/").split("/")
    if ".." in parts:
        raise ValueError(f"{filename}: filename escapes the image root {image_root!r} ('..')")
    root = os.path.realpath(image_root)
    path = os.path.realpath(os.path.join(root, filename))
    if os.path.commonpath([root, path]) != root:
        raise ValueError(f"{filename}: filename escapes the image root {image_root!r} (resolves to {path})")
    return os.path.join(image_root, filename)


def load_json(path, what="JSON file"):
    """Parses a JSON file; a missing file or malformed JSON raises a ValueError naming the file."""
    if not os.path.isfile(path):
        raise ValueError(f"{path}: {what} not found")
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: malformed JSON ({error})") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error})") from None


def _sentences(token_lists, raws):
    return [records_lib.Sentence(tokens=tokens, raw=raw) for tokens, raw in zip(token_lists, raws)]


def _require(mapping, key, path, where):
    if not isinstance(mapping, dict):
        raise ValueError(f"{path}: {where} must be a JSON object, received {type(mapping).__name__}: {mapping!r:.80}")
    if key not in mapping:
        raise ValueError(f"{path}: {where} is missing the field {key!r} (has {sorted(mapping)})")
    return mapping[key]


def karpathy_from_json(data, path, restval_to_train=True):
    """Builds a CaptionDataset from parsed Karpathy split JSON (``path`` is only used in messages)."""
    images = _require(data, "images", path, "the top level")
    if not isinstance(images, list):
        raise ValueError(f"{path}: field 'images' must be a list, received {type(images).__name__}")
    entries = []  # (filename, image_id, split, [texts to tokenize], [raw strings])
    for index, image in enumerate(images):
        where = f"images[{index}]"
        filename = _require(image, "filename", path, where)
        if not isinstance(filename, str) or not filename:
            raise ValueError(f"{path}: {where}.filename must be a non-empty string, received {filename!r}")
        filepath = image.get("filepath")
        if filepath:
            filename = f"{str(filepath).rstrip('/')}/{filename}"
        split = _require(image, "split", path, where)
        if split not in KARPATHY_SPLITS:
            raise ValueError(
                f"{path}: {where} ({filename}): unknown split {split!r}; expected one of {KARPATHY_SPLITS}"
            )
        if split == "restval" and restval_to_train:
            split = "train"
        image_id = image.get("imgid", index)
        if not isinstance(image_id, int):
            raise ValueError(f"{path}: {where} ({filename}): imgid must be an integer, received {image_id!r}")
        sentences = _require(image, "sentences", path, where)
        if not isinstance(sentences, list):
            raise ValueError(f"{path}: {where} ({filename}): 'sentences' must be a list, received {sentences!r:.80}")
        texts, raws = [], []
        for sentence_index, sentence in enumerate(sentences):
            sentence_where = f"{where}.sentences[{sentence_index}] ({filename})"
            if not isinstance(sentence, dict) or ("tokens" not in sentence and "raw" not in sentence):
                raise ValueError(f"{path}: {sentence_where} needs 'tokens' or 'raw', received {sentence!r:.80}")
            raw = sentence.get("raw", "")
            if not isinstance(raw, str):
                raise ValueError(f"{path}: {sentence_where}.raw must be a string, received {raw!r:.80}")
            tokens = sentence.get("tokens")
            if tokens is not None:
                if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
                    raise ValueError(
                        f"{path}: {sentence_where}.tokens must be a list of strings, received {tokens!r:.80}"
                    )
                texts.append(" ".join(tokens))
            else:
                texts.append(raw)
            raws.append(raw)
        entries.append((filename, image_id, split, texts, raws))
    return _build(entries, name=str(data.get("dataset", os.path.splitext(os.path.basename(path))[0])))


def _build(entries, name):
    """Tokenizes every caption in one batched call and assembles the records."""
    token_lists = text.tokenize_batch([caption for entry in entries for caption in entry[3]])
    records, position = [], 0
    for filename, image_id, split, texts, raws in entries:
        tokens = token_lists[position : position + len(texts)]
        position += len(texts)
        records.append(records_lib.ImageRecord(filename, int(image_id), split, _sentences(tokens, raws)))
    return records_lib.CaptionDataset(records=records, name=name)


def read_karpathy_json(path, restval_to_train=True):
    """Reads a Karpathy split JSON; ``restval`` joins ``train`` unless ``restval_to_train=False``."""
    return karpathy_from_json(load_json(path, "Karpathy split JSON"), path, restval_to_train)


def _read_name_list(path):
    with open(path, encoding="utf-8-sig") as stream:
        return [line.strip() for line in stream if line.strip()]


def read_flickr_tokens(path, split_files=None):
    """Reads Flickr8k's `Flickr8k.token.txt` and its split files.

    Args:
        path: the token file; lines `name.jpg#k<TAB>caption`.
        split_files: optional `{"train"|"val"|"test": path}`; by default the `Flickr_8k.*Images.txt`
            files next to the token file. Images in no split file are left out (Flickr8k lists 8000
            of its 8092 captioned images).
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path}: Flickr8k token file not found")
    captions = {}  # filename -> [(k, caption)] in file order
    with open(path, encoding="utf-8-sig") as stream:
        for line_number, line in enumerate(stream, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            key, tab, caption = line.partition("\t")
            name, hash_sign, number = key.partition("#")
            if not tab or not hash_sign or not name or not number.strip().isdigit():
                raise ValueError(
                    f"{path}:{line_number}: expected 'name.jpg#k<TAB>caption', received {line!r:.100}"
                )
            captions.setdefault(name.strip(), []).append((int(number), caption.strip()))
    if split_files is None:
        folder = os.path.dirname(os.path.abspath(path))
        split_files = {split: os.path.join(folder, name) for split, name in FLICKR8K_SPLIT_FILES.items()}
        missing = [file for file in split_files.values() if not os.path.isfile(file)]
        if missing:
            raise ValueError(
                f"{path}: split files not found next to the token file: {missing}; give the image lists "
                "with --split-files TRAIN VAL TEST (split_files={'train': ..., 'val': ..., 'test': ...})"
            )
    unknown = sorted(set(split_files) - set(records_lib.SPLITS))
    if unknown:
        raise ValueError(f"split_files: unknown split(s) {unknown}; expected some of {records_lib.SPLITS}")
    split_of = {}
    for split, split_path in split_files.items():
        if not os.path.isfile(split_path):
            raise ValueError(f"{split_path}: {split} split file not found")
        for name in _read_name_list(split_path):
            if name not in captions:
                raise ValueError(f"{split_path}: image {name!r} has no captions in {path}")
            if name in split_of and split_of[name] != split:
                raise ValueError(f"{split_path}: image {name!r} is already in the {split_of[name]} split")
            split_of[name] = split
    entries = []
    for image_id, (name, numbered) in enumerate(captions.items()):
        if name not in split_of:
            continue
        raws = [caption for _, caption in sorted(numbered, key=lambda item: item[0])]
        entries.append((name, image_id, split_of[name], raws, raws))
    return _build(entries, name="flickr8k")


def split_from_coco_filename(path):
    """`captions_train2014.json` -> "train", `captions_val2017.json` -> "val"; None when unknown."""
    base = os.path.basename(path).lower()
    for marker, split in (("train", "train"), ("val", "val"), ("test", "test")):
        if marker in base:
            return split
    return None


def coco_from_json(data, path, split=None, filepath=None):
    """Builds a CaptionDataset from parsed COCO captions JSON (see `read_coco_captions`)."""
    split = split or split_from_coco_filename(path)
    if split not in records_lib.SPLITS:
        raise ValueError(
            f"{path}: cannot tell the split from the file name and none was given (received {split!r}); "
            f"give it with --split-of-file (split=), one of {records_lib.SPLITS}"
        )
    images = _require(data, "images", path, "the top level")
    annotations = _require(data, "annotations", path, "the top level")
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise ValueError(f"{path}: 'images' and 'annotations' must be lists")
    order, names = [], {}
    for index, image in enumerate(images):
        where = f"images[{index}]"
        image_id = _require(image, "id", path, where)
        name = _require(image, "file_name", path, where)
        if not isinstance(image_id, int) or not isinstance(name, str) or not name:
            raise ValueError(f"{path}: {where}: id must be an integer and file_name a string, received {image!r:.100}")
        if image_id in names:
            raise ValueError(f"{path}: {where}: duplicate image id {image_id}")
        names[image_id] = f"{filepath.rstrip('/')}/{name}" if filepath else name
        order.append(image_id)
    captions = {image_id: [] for image_id in order}
    for index, annotation in enumerate(annotations):
        where = f"annotations[{index}]"
        image_id = _require(annotation, "image_id", path, where)
        caption = _require(annotation, "caption", path, where)
        if image_id not in captions:
            raise ValueError(f"{path}: {where}: image_id {image_id!r} names no entry of 'images'")
        if not isinstance(caption, str):
            raise ValueError(f"{path}: {where}.caption must be a string, received {caption!r:.80}")
        captions[image_id].append(caption.strip())
    entries = [(names[image_id], image_id, split, captions[image_id], captions[image_id]) for image_id in order]
    return _build(entries, name="coco")


def read_coco_captions(path, split=None, filepath=None):
    """Reads a COCO captions JSON.

    Args:
        path: e.g. `captions_train2014.json`.
        split: "train", "val" or "test"; by default from the file name (`captions_val2014` -> val).
        filepath: optional folder prefixed to each `file_name` (e.g. "val2014"), as Karpathy's files do.
    """
    return coco_from_json(load_json(path, "COCO captions JSON"), path, split=split, filepath=filepath)


def read_dataset(path, restval_to_train=True, split_files=None, split_of_file=None):
    """Reads any supported format, detected from the content (JSON) or a `.txt`/`.token` extension (Flickr8k).

    Args:
        path: the captions file.
        restval_to_train: Karpathy JSON: whether `restval` joins `train`.
        split_files: Flickr token file: `{"train"|"val"|"test": image list path}` (default: Flickr8k's
            `Flickr_8k.*Images.txt` next to the token file).
        split_of_file: COCO captions JSON: the split of every image (default: from the file name).
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path}: dataset file not found")
    is_token_file = path.lower().endswith((".txt", ".token"))
    if split_files is not None and not is_token_file:
        raise ValueError(f"{path}: split files (--split-files) apply to a Flickr token file (.txt/.token) only")
    if is_token_file:
        if split_of_file is not None:
            raise ValueError(f"{path}: --split-of-file applies to a COCO captions JSON only; a token file takes --split-files")
        return read_flickr_tokens(path, split_files=split_files)
    data = load_json(path, "dataset file")
    if isinstance(data, dict) and "annotations" in data:
        return coco_from_json(data, path, split=split_of_file)
    if split_of_file is not None:
        raise ValueError(f"{path}: --split-of-file applies to a COCO captions JSON only; a Karpathy JSON names each image's split")
    if isinstance(data, dict) and "images" in data:
        return karpathy_from_json(data, path, restval_to_train=restval_to_train)
    keys = sorted(data) if isinstance(data, dict) else type(data).__name__
    raise ValueError(
        f"{path}: unknown dataset format (top level {keys}); expected Karpathy split JSON ('images' with "
        "'sentences'), COCO captions JSON ('images' and 'annotations') or a Flickr8k token .txt"
    )


def read_data_config(config):
    """`read_dataset` of a `DataConfig` (its optional `split_files` / `split_of_file`, when it has them)."""
    return read_dataset(
        config.dataset,
        restval_to_train=config.restval_to_train,
        split_files=getattr(config, "split_files", None),
        split_of_file=getattr(config, "split_of_file", None),
    )


def split_files_argument(paths):
    """`--split-files TRAIN VAL TEST` (3 paths; '-' = no such split) -> {split: path}, or None if not given."""
    if paths is None:
        return None
    if len(paths) != 3:
        raise ValueError(f"--split-files takes 3 paths (train, val, test; '-' for none), received {list(paths)}")
    return {split: file for split, file in zip(("train", "val", "test"), paths) if file != "-"}


def write_karpathy_json(dataset, path):
    """Writes a `CaptionDataset` as Karpathy split JSON (raw captions and their tokens), atomically.

    Every command reads the result, whatever format the dataset came from (a COCO file whose split was
    given, a Flickr token file with its split lists), so the split choice is made once.
    """
    images = [
        {
            "filename": record.filename,
            "imgid": record.image_id,
            "split": record.split,
            "sentences": [{"raw": sentence.raw, "tokens": list(sentence.tokens)} for sentence in record.sentences],
        }
        for record in dataset.records
    ]
    atomic_write_text(path, json.dumps({"dataset": dataset.name, "images": images}, ensure_ascii=False) + "\n")
    return path
