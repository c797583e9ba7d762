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
import sys

import ijson
import numpy as np

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


def _json_error_text(error):
    """ijson's multi-line message (sometimes bytes) -> its first line."""
    message = error.args[0] if error.args else ""
    text = (message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _build_value(first_event, first_value, events):
    """Assembles one JSON value (a map or an array) from its start event and the events that follow."""
    builder = ijson.ObjectBuilder()
    builder.event(first_event, first_value)
    depth = 1
    for event, value in events:
        builder.event(event, value)
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 0:
                return builder.value
    raise ijson.IncompleteJSONError("premature EOF")


def stream_json_object(path, what="JSON file", arrays=(), seen_keys=None):
    """Streams a file holding one JSON object, item by item, never the whole parse in memory.

    Yields ``(key, index, value)``: for each top-level key named in ``arrays`` whose value is a list,
    one triple per element (``index`` its position); for every other top-level key one triple with
    ``index`` None and the whole value. A top-level array in ``arrays`` that is not a list comes whole
    (``index`` None), so the caller can name the wrong type. Peak memory is one element, not the file:
    a COCO-sized Karpathy JSON (600,000 captions) parses in ~1 GB with `json.load`. ``seen_keys`` (a
    list) receives every top-level key as it is read, including those of empty arrays, which yield nothing.

    Raises:
        ValueError naming the file: missing, malformed JSON (truncated, trailing text, NaN / Infinity /
        1e999 and integers beyond 64 bits, which Python's `json` reads but RFC 8259 JSON does not allow),
        not UTF-8, or a top level that is not an object.
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path}: {what} not found")
    try:
        with open(path, "rb") as stream:
            # ijson (yajl2 C backend) streams the events; the ObjectBuilder assembles one element at a time.
            events = ijson.basic_parse(stream, use_float=True)
            event, _ = next(events)  # an empty file: yajl raises "premature EOF"
            if event != "start_map":
                found = "an array" if event == "start_array" else "a single value"
                raise ValueError(f"{path}: {what} must hold a JSON object at the top level, found {found}")
            key = None
            for event, value in events:
                if event == "map_key":
                    key = value
                    if seen_keys is not None:
                        seen_keys.append(key)
                elif event == "end_map":
                    break
                elif event == "start_array" and key in arrays:
                    index = 0
                    for event, value in events:
                        if event == "end_array":
                            break
                        if event in ("start_map", "start_array"):
                            value = _build_value(event, value, events)
                        yield key, index, value
                        index += 1
                elif event in ("start_map", "start_array"):
                    yield key, None, _build_value(event, value, events)
                else:
                    yield key, None, value
            for _ in events:  # trailing text after the object: yajl raises
                pass
    except ijson.JSONError as error:
        raise ValueError(f"{path}: malformed JSON ({_json_error_text(error)})") from None


def _require(mapping, key, path, where):
    if not isinstance(mapping, dict):
        raise ValueError(f"{path}: {where} must be a JSON object, received {type(mapping).__name__}: {mapping!r:.80}")
    if key not in mapping:
        raise ValueError(f"{path}: {where} is missing the field {key!r} (has {sorted(mapping)})")
    return mapping[key]


def _karpathy_entry(image, index, path, restval_to_train):
    """One element of a Karpathy file's `images` -> (filename, image_id, split, [texts to tokenize], [raws])."""
    where = f"images[{index}]"
    filename = _require(image, "filename", path, where)
    if not isinstance(filename, str) or not filename:
        raise ValueError(f"{path}: {where}.filename must be a non-empty string, received {filename!r}")
    filepath = image.get("filepath")
    if filepath:
        filename = f"{str(filepath).rstrip('/')}/{filename}"
    split = _require(image, "split", path, where)
    if split not in KARPATHY_SPLITS:
        raise ValueError(f"{path}: {where} ({filename}): unknown split {split!r}; expected one of {KARPATHY_SPLITS}")
    if split == "restval" and restval_to_train:
        split = "train"
    image_id = image.get("imgid", index)
    if not isinstance(image_id, int) or isinstance(image_id, bool):
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
                raise ValueError(f"{path}: {sentence_where}.tokens must be a list of strings, received {tokens!r:.80}")
            texts.append(" ".join(tokens))
        else:
            texts.append(raw)
        raws.append(raw)
    return filename, image_id, split, texts, raws


def _coco_image(image, index, path, filepath):
    """One element of a COCO file's `images` -> (image id, filename)."""
    where = f"images[{index}]"
    image_id = _require(image, "id", path, where)
    name = _require(image, "file_name", path, where)
    if not isinstance(image_id, int) or isinstance(image_id, bool) or not isinstance(name, str) or not name:
        raise ValueError(f"{path}: {where}: id must be an integer and file_name a string, received {image!r:.100}")
    return image_id, (f"{filepath.rstrip('/')}/{name}" if filepath else name)


def _coco_caption(annotation, index, path):
    """One element of a COCO file's `annotations` -> (image id, caption)."""
    where = f"annotations[{index}]"
    image_id = _require(annotation, "image_id", path, where)
    caption = _require(annotation, "caption", path, where)
    if not isinstance(caption, str):
        raise ValueError(f"{path}: {where}.caption must be a string, received {caption!r:.80}")
    return image_id, caption.strip()


def _coco_split(path, split):
    split = split or split_from_coco_filename(path)
    if split not in records_lib.SPLITS:
        raise ValueError(
            f"{path}: cannot tell the split from the file name and none was given (received {split!r}); "
            f"give it with --split-of-file (split=), one of {records_lib.SPLITS}"
        )
    return split


def _read_json_dataset(path, what, expect=None, restval_to_train=True, coco_split=None, coco_filepath=None):
    """Reads a Karpathy split JSON or a COCO captions JSON in one streaming pass.

    ``expect`` "karpathy" or "coco" fixes the format; None lets the content decide: images carrying
    "sentences" are Karpathy's, images with a "file_name" and no sentences (or a file with only
    "annotations") COCO's. Karpathy records are assembled while the file streams; COCO's captions
    are grouped by image id first (they follow the images in the file).
    """
    state = {"format": expect, "name": None, "keys": [], "split": None}
    coco_names, coco_order, captions, first_annotation = {}, [], {}, {}

    def decide(image):
        if state["format"] is None:
            coco = isinstance(image, dict) and "sentences" not in image and "file_name" in image
            state["format"] = "coco" if coco else "karpathy"
        if state["format"] == "coco" and state["split"] is None:
            state["split"] = _coco_split(path, coco_split)
        if state["format"] == "karpathy" and coco_split is not None:
            raise ValueError(f"{path}: --split-of-file applies to a COCO captions JSON only; a Karpathy JSON names each image's split")

    def karpathy_entries():
        arrays = ("images",) if expect == "karpathy" else ("images", "annotations")
        for key, index, value in stream_json_object(path, what, arrays=arrays, seen_keys=state["keys"]):
            if key == "dataset" and isinstance(value, str):
                state["name"] = value
            elif key in ("images", "annotations") and index is None and key in arrays:
                raise ValueError(f"{path}: field {key!r} must be a list, received {type(value).__name__}")
            elif key == "images":
                decide(value)
                if state["format"] == "karpathy":
                    yield _karpathy_entry(value, index, path, restval_to_train)
                else:
                    image_id, name = _coco_image(value, index, path, coco_filepath)
                    if image_id in coco_names:
                        raise ValueError(f"{path}: images[{index}]: duplicate image id {image_id}")
                    coco_names[image_id] = name
                    coco_order.append(image_id)
            elif key == "annotations" and key in arrays:  # a Karpathy read ignores them
                image_id, caption = _coco_caption(value, index, path)
                captions.setdefault(image_id, []).append(caption)
                first_annotation.setdefault(image_id, index)

    records = _build(karpathy_entries())
    keys = list(dict.fromkeys(state["keys"]))  # in file order, once each
    if "images" not in keys and "annotations" not in keys:
        if expect is None:
            raise ValueError(
                f"{path}: unknown dataset format (top level {sorted(keys)}); expected Karpathy split JSON ('images' with "
                "'sentences'), COCO captions JSON ('images' and 'annotations') or a Flickr8k token .txt"
            )
        raise ValueError(f"{path}: the top level is missing the field 'images' (has {sorted(keys)})")
    if state["format"] is None and ("annotations" in keys or expect == "coco"):
        decide({"file_name": None})
    if state["format"] != "coco":
        if coco_split is not None:  # no image told the format: a Karpathy file with an empty `images`
            raise ValueError(f"{path}: --split-of-file applies to a COCO captions JSON only; a Karpathy JSON names each image's split")
        name = state["name"] or os.path.splitext(os.path.basename(path))[0]
        return records_lib.CaptionDataset(records=records, name=name)
    for field in ("images", "annotations"):
        if field not in keys:
            raise ValueError(f"{path}: the top level is missing the field {field!r} (has {sorted(keys)})")
    unknown = [image_id for image_id in captions if image_id not in coco_names]
    if unknown:
        index = min(first_annotation[image_id] for image_id in unknown)
        image_id = next(image_id for image_id in unknown if first_annotation[image_id] == index)
        raise ValueError(f"{path}: annotations[{index}]: image_id {image_id!r} names no entry of 'images'")

    def coco_entries():
        for image_id in coco_order:
            image_captions = captions.pop(image_id, [])  # released as the records are built
            yield coco_names[image_id], image_id, state["split"], image_captions, image_captions

    return records_lib.CaptionDataset(records=_build(coco_entries()), name="coco")


BUILD_CHUNK_CAPTIONS = 4096  # captions tokenized per TF call while records are assembled (16,384: +15 MB RSS at 600K captions)


def _build(entries):
    """Tokenizes the captions of ``entries`` a chunk at a time into `SentenceColumns`; one record per entry.

    The captions never become Python objects: each chunk's words go straight to ids of the dataset's
    word table and its raw texts to one UTF-8 buffer, so a dataset costs its arrays (~100 bytes a
    COCO caption), not its parse; each record's `sentences` is a `SentenceView` of the columns.
    """
    records, counts, chunk = [], [], []
    word_ids, words = {}, []
    token_parts, length_parts, raw_buffer, raw_length_parts = [], [], bytearray(), []
    chunk_captions = 0

    def flush():
        texts = [caption for entry in chunk for caption in entry[3]]
        token_ids, lengths = text.tokenize_to_ids(texts, word_ids, words)
        token_parts.append(token_ids)
        length_parts.append(lengths)
        encoded = [raw.encode("utf-8") for entry in chunk for raw in entry[4]]
        raw_buffer.extend(b"".join(encoded))
        raw_length_parts.append(np.fromiter(map(len, encoded), np.int64, len(encoded)))
        for filename, image_id, split, texts, _ in chunk:
            records.append(records_lib.ImageRecord(filename, int(image_id), sys.intern(split), None))  # one "train" string
            counts.append(len(texts))
        chunk.clear()

    for entry in entries:
        chunk.append(entry)
        chunk_captions += len(entry[3])
        if chunk_captions >= BUILD_CHUNK_CAPTIONS:
            flush()
            chunk_captions = 0
    flush()
    lengths = np.concatenate(length_parts)
    columns = records_lib.SentenceColumns(
        words,
        np.concatenate(token_parts),
        np.concatenate([[0], np.cumsum(lengths)]),
        raw_buffer,
        np.concatenate([[0], np.cumsum(np.concatenate(raw_length_parts))]),
    )
    first = 0
    for record, count in zip(records, counts):
        record.sentences = records_lib.SentenceView(columns, first, count)
        first += count
    return records


def read_karpathy_json(path, restval_to_train=True):
    """Reads a Karpathy split JSON (streamed); ``restval`` joins ``train`` unless ``restval_to_train=False``."""
    return _read_json_dataset(path, "Karpathy split JSON", expect="karpathy", restval_to_train=restval_to_train)


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
    return records_lib.CaptionDataset(records=_build(entries), name="flickr8k")


def split_from_coco_filename(path):
    """`captions_train2014.json` -> "train", `captions_val2017.json` -> "val"; None when unknown."""
    base = os.path.basename(path).lower()
    for marker, split in (("train", "train"), ("val", "val"), ("test", "test")):
        if marker in base:
            return split
    return None


def read_coco_captions(path, split=None, filepath=None):
    """Reads a COCO captions JSON (streamed).

    Args:
        path: e.g. `captions_train2014.json`.
        split: "train", "val" or "test"; by default from the file name (`captions_val2014` -> val).
        filepath: optional folder prefixed to each `file_name` (e.g. "val2014"), as Karpathy's files do.
    """
    return _read_json_dataset(path, "COCO captions JSON", expect="coco", coco_split=split, coco_filepath=filepath)


def read_dataset(path, restval_to_train=True, split_files=None, split_of_file=None):
    """Reads any supported format, detected from the content (JSON) or a `.txt`/`.token` extension (Flickr8k).

    JSON files are streamed (`stream_json_object`): memory holds the records, never the whole parse.

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
    return _read_json_dataset(path, "dataset file", restval_to_train=restval_to_train, coco_split=split_of_file)


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
