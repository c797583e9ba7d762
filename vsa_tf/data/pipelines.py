"""tf.data builders streaming images and sentences from disk into the models' batches.

Image side, pixel mode (per image): read bytes -> `tf.io.decode_image` (JPEG/PNG, 3 channels) ->
resize to `config.image_size` (stretched, so normalised boxes stay valid) -> regions: the whole image
as region 0 then the top `config.max_boxes` boxes as normalised `[y0, x0, y1, x1]`, zero-padded to
R = max_boxes + 1 with `region_mask`. Cached mode (`features=` a `FeatureStore`): `region_features`
[R, D] + `region_mask` instead of `images` / `boxes`, streamed from the store's TFRecord shards (the
split's images picked by filename on the way), so memory is bounded by the batch and buffer sizes,
never by the split.

Sentence side: raw strings batched, then `text.encode_sentences` (the same tf.strings tokenizer the
exported graphs use) with the vocabulary's `id_table`.

Batch keys and dtypes are listed in docs/CONVENTIONS.md. Raw `tf` is used here (data/ owns tf.data).
"""

import os

import numpy as np
import tensorflow as tf

from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import image_limits
from vsa_tf.data import readers
from vsa_tf.data import records as records_lib
from vsa_tf.data import snippet_format
from vsa_tf.data import text

# Cached mode never holds a split: these bound the buffers that stand in for it.
SHUFFLE_BUFFER_BYTES = 256 << 20  # features in the image shuffle buffer (a quarter of it in the pair buffer)
SHUFFLE_BUFFER_MAX_EXAMPLES = 10_000  # and at most this many images (a quarter as many pairs)
ORDERED_CHUNK_BYTES = 64 << 20  # records not in the store's order are put in order this many bytes at a time
# The snippet fields region captioning reads (an in-memory snippets list needs only these).
REGION_CAPTION_FIELDS = ("filename", "words", "box")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _image_paths(records, image_root):
    return np.array([readers.resolve_image_path(image_root, record.filename) for record in records], dtype=object)


def decode_and_resize_bytes(image_bytes, image_size, name=None):
    """Encoded JPEG/PNG bytes -> (float32 [H, W, 3] in 0..255 resized to image_size, decoded height, width).

    The one image decode of the project: the training pipeline (`decode_and_resize`, from a file) and
    the exported serving signatures (`vsa_tf.export.preprocessing`, from request bytes) both call it,
    so there is no train/serve skew. A JPEG or PNG whose header declares more than
    `image_limits.MAX_IMAGE_PIXELS` pixels (a decompression bomb) is refused before decoding: an
    InvalidArgumentError naming ``name`` (the file's path, or the element's index in a batch).
    """
    name = "(unnamed)" if name is None else name
    with tf.control_dependencies([image_limits.pixel_limit_assert(image_bytes, name)]):
        image_bytes = tf.identity(image_bytes)
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)  # uint8 [h, w, 3]
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    resized = tf.image.resize(image, image_size)  # float32, bilinear
    resized.set_shape([image_size[0], image_size[1], 3])
    return resized, height, width


def decode_and_resize(path, image_size):
    """Image file -> (float32 [H, W, 3] in 0..255 resized to image_size, decoded height, decoded width).

    A decompression bomb is refused before decoding, by the file's path (`decode_and_resize_bytes`).
    """
    return decode_and_resize_bytes(tf.io.read_file(path), image_size, name=path)


class _ImageSide:
    """Builds the per-example pixel-mode image side from an index into ``records``."""
    def __init__(self, records, image_root, boxes, config, whole_image_only=False):
        self.image_size = tuple(int(size) for size in config.image_size)
        self.whole_image_only = whole_image_only
        filenames = [record.filename for record in records]
        self.paths = tf.constant(_image_paths(records, image_root).astype(str))
        max_boxes = 0 if whole_image_only else int(config.max_boxes)
        pixel_boxes, counts = boxes_lib.padded_pixel_boxes(boxes, filenames, max_boxes)
        self.pixel_boxes = tf.constant(pixel_boxes)  # [N, K, 4]
        self.box_counts = tf.constant(counts)  # [N]

    def __call__(self, pair):
        """``pair`` holds `image_index` (and `snippet_box`, pixels [4], for region captioning)."""
        image_index = pair["image_index"]
        image, height, width = decode_and_resize(tf.gather(self.paths, image_index), self.image_size)
        if "snippet_box" in pair:  # region captioning: R = 1, the snippet's box
            boxes = boxes_lib.normalize_boxes(pair["snippet_box"][None, :], height, width)
            mask = tf.constant([True])
        else:
            boxes, mask = boxes_lib.region_boxes(
                tf.gather(self.pixel_boxes, image_index), tf.gather(self.box_counts, image_index), height, width
            )
        return {"images": image, "boxes": boxes, "region_mask": mask}


class _CachedSplit:
    """The cached region features of ``records``, streamed from a `FeatureStore`'s shards.

    Never holds the split in memory: the images of ``records`` are picked out by filename while the
    shards stream past (`FeatureStore.select`). `ordered` yields them in record order (a plain stream
    when the records follow the store's index order, as `vsa-tf cache-features` writes them; otherwise
    chunks of `ORDERED_CHUNK_BYTES` read and put in order one at a time); `pairs` joins each image with
    its sentences, shuffled through bounded buffers for training.
    """

    def __init__(self, records, store, whole_image_only=False):
        self.records = list(records)
        self.store = store
        self.filenames = [record.filename for record in self.records]
        rows = store.rows(self.filenames)  # ValueError naming images without features
        self.in_store_order = bool(np.all(np.diff(rows) > 0))
        self.regions = 1 if whole_image_only else int(store.regions)
        self.bytes_per_image = self.regions * (int(store.dims) * 4 + 1)

    def _crop(self, features, mask):
        return features[: self.regions], mask[: self.regions]  # caption mode: region 0, the whole image

    def ordered(self):
        """Unbatched {"region_features" float32 [R, D], "region_mask" bool [R], "image_index" int64} in record order."""
        if self.in_store_order:
            # Distinct filenames in index order: `key` is the position in records.
            selected, _ = self.store.select(self.filenames)

            def rename(example):
                features, mask = self._crop(example["region_features"], example["region_mask"])
                return {"region_features": features, "region_mask": mask, "image_index": example["key"]}

            return selected.map(rename, num_parallel_calls=tf.data.AUTOTUNE)
        chunk = max(1, ORDERED_CHUNK_BYTES // self.bytes_per_image)

        def generate():
            for start in range(0, len(self.filenames), chunk):
                features, mask = self.store.load(self.filenames[start : start + chunk])  # [C, R, D], [C, R]
                for offset in range(len(features)):
                    yield {
                        "region_features": features[offset, : self.regions],
                        "region_mask": mask[offset, : self.regions],
                        "image_index": np.int64(start + offset),
                    }

        return tf.data.Dataset.from_generator(
            generate,
            output_signature={
                "region_features": tf.TensorSpec([self.regions, self.store.dims], tf.float32),
                "region_mask": tf.TensorSpec([self.regions], tf.bool),
                "image_index": tf.TensorSpec([], tf.int64),
            },
        )

    def pairs(self, shuffle, seed, batch_size, region_texts=None):
        """(unbatched {"region_features", "region_mask", "sentence", "image_id"}, their `SentenceTable`): one per sentence.

        ``sentence`` is the pair's row of the table (`_batch_pairs` encodes a batch of rows at once).

        Unshuffled: record order, each record's sentences in order. Shuffled (a new order each epoch):
        the shards in a new order, interleaved, through an image buffer, expanded to sentences, then
        through a pair buffer; both buffers are bounded (`SHUFFLE_BUFFER_BYTES`, `SHUFFLE_BUFFER_MAX_EXAMPLES`).

        ``region_texts`` (one list per record of (text, region index) pairs) replaces the sentences:
        each pair's image side is then that one region of the image (R = 1), as region captioning reads it.
        """
        if shuffle:
            images, distinct = self.store.select(self.filenames, shuffle=True, seed=_offset_seed(seed, 1))
            group_of = {filename: group for group, filename in enumerate(distinct)}
            groups = [group_of[filename] for filename in self.filenames]

            def crop(example):
                features, mask = self._crop(example["region_features"], example["region_mask"])
                return {"region_features": features, "region_mask": mask, "key": example["key"]}

            images = images.map(crop, num_parallel_calls=tf.data.AUTOTUNE)
            image_buffer = _buffer_size(len(distinct), self.bytes_per_image, 1)
            images = images.shuffle(image_buffer, seed=_offset_seed(seed, 2), reshuffle_each_iteration=True)
        else:
            distinct, groups = self.filenames, range(len(self.records))
            images = self.ordered().map(
                lambda example: dict(example, key=example["image_index"]), num_parallel_calls=tf.data.AUTOTUNE
            )
        # Sentences grouped by image: those of group g are rows starts[g]:starts[g + 1] of the tables,
        # built in group order (records sorted stably by group). A pair carries its sentence's row, and
        # `SentenceTable.encoder` turns a batch of rows into token ids: no string per caption (COCO has
        # 600,000), no text to split and look up per batch.
        order = np.argsort(np.asarray(groups, np.int64), kind="stable")
        ordered = [self.records[position] for position in order]
        if region_texts is None:
            per_record = np.fromiter((len(record.sentences) for record in ordered), np.int64, len(ordered))
            table = SentenceTable.of_records(ordered)
            regions = [0]
        else:
            entries = [region_texts[position] for position in order]
            per_record = np.fromiter((len(entry) for entry in entries), np.int64, len(entries))
            table = SentenceTable.of_texts([entry_text for entry in entries for entry_text, _ in entry])
            regions = [region for entry in entries for _, region in entry] or [0]  # read by region pairs only
        counts = np.zeros(len(distinct) + 1, np.int64)
        np.add.at(counts, np.asarray(groups, np.int64)[order] + 1, per_record)
        starts = tf.constant(np.cumsum(counts), tf.int64)
        num_pairs = int(per_record.sum())
        image_ids = np.repeat(np.asarray([record.image_id for record in ordered], np.int64), per_record)
        image_ids = tf.constant(image_ids if num_pairs else [0], tf.int64)
        regions = tf.constant(regions, tf.int64)

        def expand(example):
            start, end = starts[example["key"]], starts[example["key"] + 1]
            count = tf.cast(end - start, tf.int32)
            if region_texts is None:
                features = tf.tile(example["region_features"][None], tf.stack([count, 1, 1]))  # [n, R, D]
                mask = tf.tile(example["region_mask"][None], tf.stack([count, 1]))  # [n, R]
            else:
                features = tf.gather(example["region_features"], regions[start:end])[:, None, :]  # [n, 1, D]
                mask = tf.gather(example["region_mask"], regions[start:end])[:, None]  # a padding region stays masked
            sentence = tf.range(start, end)
            return {"region_features": features, "region_mask": mask, "sentence": sentence, "image_id": image_ids[start:end]}

        pairs = images.map(expand, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        if shuffle:
            # A region pair holds one region's features, a sentence pair the image's R regions.
            bytes_per_pair = self.bytes_per_image if region_texts is None else int(self.store.dims) * 4 + 1
            pair_buffer = _buffer_size(num_pairs, bytes_per_pair, batch_size, fraction=4)
            pairs = pairs.shuffle(pair_buffer, seed=_offset_seed(seed, 3), reshuffle_each_iteration=True)
        return pairs, table


class SentenceTable:
    """Sentences as word ids of a word table (row s: token_ids[row_splits[s]:row_splits[s + 1]]), for the cached pairs.

    Built from records viewing one `records.SentenceColumns` without a Python object per caption
    (their words came from `text.tokenize`, so they are what `text.encode_sentences` would find), or
    from texts through `text.tokenize_to_ids` (the same tokenizer).

    Args:
        words: the word table (str), indexed by the ids.
        token_ids: int32 [T], every sentence's word ids, one sentence after another.
        row_splits: int64 [S + 1], sentence s holds token_ids[row_splits[s]:row_splits[s + 1]].

    Example:
        >>> table = SentenceTable.of_texts(["A red dog.", "dog"])
        >>> ids, mask = table.encoder(text.Vocabulary(["dog", "red"]), max_words=3)(tf.constant([0, 1], tf.int64))
        >>> ids.numpy().tolist()  # "a" is unknown (1), then red (5), dog (4); padding 0
        [[1, 5, 4], [4, 0, 0]]
    """

    def __init__(self, words, token_ids, row_splits):
        self.words = list(words)
        self.token_ids = np.asarray(token_ids, np.int32)
        self.row_splits = np.asarray(row_splits, np.int64)

    @classmethod
    def of_records(cls, records):
        if records_lib.shared_columns(records) is not None:
            return cls(*records_lib.sentence_token_ids(records))  # (normalised words: no re-tokenizing)
        return cls.of_texts([sentence.text for record in records for sentence in record.sentences])

    @classmethod
    def of_texts(cls, texts):
        words = []
        token_ids, lengths = text.tokenize_to_ids(texts, {}, words)
        return cls(words, token_ids, np.concatenate([[0], np.cumsum(lengths)]))

    def encoder(self, vocabulary, max_words):
        """A graph function: rows int64 [B] -> (ids int32 [B, max_words], mask bool [B, max_words]), as
        `text.encode_sentences` gives for the rows' texts (longer ones truncated, unknown words `UNKNOWN_ID`)."""
        # Every token as its vocabulary id, in numpy once (uint16 while the vocabulary allows: COCO's ~6M
        # tokens then cost 12 MB), plus one spare padding entry that masked positions gather.
        dtype = np.uint16 if vocabulary.size <= np.iinfo(np.uint16).max else np.int32
        vocabulary_ids = np.asarray([vocabulary.id(word) for word in self.words] + [text.PAD_ID], dtype)
        token_vocabulary_ids = np.empty(len(self.token_ids) + 1, dtype)
        np.take(vocabulary_ids, self.token_ids, out=token_vocabulary_ids[:-1])
        token_vocabulary_ids[-1] = text.PAD_ID
        token_vocabulary_ids = tf.constant(token_vocabulary_ids)
        row_splits = tf.constant(self.row_splits, tf.int64)
        positions = tf.range(max_words, dtype=tf.int64)[None, :]

        def encode(rows):
            starts = tf.gather(row_splits, rows)
            lengths = tf.gather(row_splits, rows + 1) - starts
            mask = positions < lengths[:, None]
            index = tf.where(mask, starts[:, None] + positions, tf.fill(tf.shape(mask), row_splits[-1]))  # the spare PAD_ID
            return tf.cast(tf.gather(token_vocabulary_ids, index), tf.int32), mask

        return encode


def _offset_seed(seed, offset):
    return None if seed is None else int(seed) + offset


def _buffer_size(count, bytes_per_example, minimum, fraction=1):
    """Shuffle buffer: at most ``count``, `SHUFFLE_BUFFER_BYTES / fraction` of features, `SHUFFLE_BUFFER_MAX_EXAMPLES`."""
    by_bytes = SHUFFLE_BUFFER_BYTES // fraction // max(bytes_per_example, 1)
    return int(max(1, min(count, max(minimum, min(by_bytes, SHUFFLE_BUFFER_MAX_EXAMPLES // fraction)))))


def _finish(dataset):
    return dataset.prefetch(tf.data.AUTOTUNE)


def images_dataset(records, image_root, boxes, config, batch_size, features=None):
    """Batched image side of ``records`` in order (no shuffle), plus `image_index` int64 [B].

    Cached mode (``features`` a `FeatureStore`) streams the records' features from its shards.
    """
    if features is not None:
        return _finish(_CachedSplit(records, features).ordered().batch(batch_size))
    image_side = _ImageSide(records, image_root, boxes, config)

    def load(image_index):
        example = image_side({"image_index": image_index})
        example["image_index"] = image_index
        return example

    dataset = tf.data.Dataset.range(len(records)).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(dataset.batch(batch_size))


def proposal_dataset(records, image_root, boxes, config, batch_size):
    """Batched images of ``records`` in order with their boxes in the resized image's pixels.

    Yields `images` float [B, H, W, 3] (resized to `config.image_size`), `boxes` float [B, K, 4] pixel
    "xyxy" of the resized image (the top `config.max_boxes` boxes, zero-padded), `box_mask` bool [B, K],
    `image_size` int [B, 2] (decoded height, width) and `image_index` int64 [B].
    """
    image_size = tuple(int(size) for size in config.image_size)
    paths = tf.constant(_image_paths(records, image_root).astype(str))
    pixel_boxes, counts = boxes_lib.padded_pixel_boxes(boxes or {}, [record.filename for record in records], int(config.max_boxes))
    pixel_boxes, counts = tf.constant(pixel_boxes), tf.constant(counts)

    def load(image_index):
        image, height, width = decode_and_resize(tf.gather(paths, image_index), image_size)
        scale = tf.cast(tf.stack([image_size[1] / width, image_size[0] / height] * 2), tf.float32)
        count = tf.gather(counts, image_index)
        mask = tf.range(tf.shape(pixel_boxes)[1]) < tf.cast(count, tf.int32)
        scaled = tf.gather(pixel_boxes, image_index) * scale[None, :] * tf.cast(mask, tf.float32)[:, None]
        return {"images": image, "boxes": scaled, "box_mask": mask, "image_size": tf.stack([height, width]), "image_index": image_index}

    dataset = tf.data.Dataset.range(len(records)).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(dataset.batch(batch_size))


def flip_proposal_example(example, image_width, seed=None):
    """Mirrors one unbatched proposal example with probability 1/2 (horizontal flip augmentation).

    `example` holds `boxes` float [K, 4] pixel "xyxy" of an image `image_width` pixels wide, `box_mask`
    bool [K], and `images` float [H, W, 3] or `feature_map` float [h, w, C] (a map of a backbone whose
    stride divides the width, so mirroring the map mirrors the image's cells).
    """
    flip = tf.random.uniform([], seed=seed) < 0.5
    example = dict(example)
    key = "images" if "images" in example else "feature_map"
    example[key] = tf.cond(flip, lambda: tf.reverse(example[key], axis=[1]), lambda: example[key])
    x0, y0, x1, y1 = tf.unstack(example["boxes"], axis=-1)
    width = tf.cast(image_width, example["boxes"].dtype)
    mirrored = tf.stack([width - x1, y0, width - x0, y1], axis=-1)
    mirrored = tf.where(example["box_mask"][:, None], mirrored, tf.zeros_like(mirrored))
    example["boxes"] = tf.where(flip, mirrored, example["boxes"])
    return example


def sentences_dataset(texts, vocabulary, config, batch_size):
    """Batched `{"tokens": int32 [B, T], "token_mask": bool [B, T]}` of raw strings, in order."""
    table = vocabulary.id_table()

    def encode(strings):
        tokens, mask = text.encode_sentences(strings, table.lookup, config.max_words)
        return {"tokens": tokens, "token_mask": mask}

    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), dtype=tf.string))
    return _finish(dataset.batch(batch_size).map(encode, num_parallel_calls=tf.data.AUTOTUNE))


def sentence_table(records):
    """Every sentence of ``records`` in order -> (texts, sentence_image int64 [S], (record index, sentence index) per sentence)."""
    texts, sentence_image, owners = [], [], []
    for image_index, record in enumerate(records):
        for sentence_index, sentence in enumerate(record.sentences):
            texts.append(sentence.text)
            sentence_image.append(image_index)
            owners.append((image_index, sentence_index))
    return texts, np.asarray(sentence_image, np.int64), owners


def retrieval_datasets(records, image_root, boxes, vocabulary, config, batch_size, features=None):
    """The two sides of a split for ranking every image against every sentence, both in order.

    Returns:
        (`images_dataset` of the records, `sentences_dataset` of all their sentences,
        sentence_image int64 [S], (record index, sentence index) of each sentence), as `sentence_table`.
    """
    texts, sentence_image, owners = sentence_table(records)
    images = images_dataset(records, image_root, boxes, config, batch_size, features=features)
    sentences = sentences_dataset(texts, vocabulary, config, batch_size)
    return images, sentences, sentence_image, owners


def scnlm_dataset(tokens, tags, content, batch_size, shuffle=False, seed=0):
    """Batches of SC-NLM training examples: one per sentence, with its image's content vector.

    Args:
        tokens: int32 [N, T + 2], START w_1..w_n END then 0 (`vsa_tf.jobs.scnlm.encode_caption_examples`).
        tags: int32 [N, T + 1], the tag of each next token (END tag for END, 0 padding).
        content: float32 [N, K], the joint-space vector of each sentence's image.
        batch_size: examples per batch.
        shuffle: reshuffle the examples every epoch (with `seed`).

    Returns:
        a dataset of `{"tokens", "tags", "content"}` batches.
    """
    dataset = tf.data.Dataset.from_tensor_slices({"tokens": tokens, "tags": tags, "content": content})
    if shuffle:
        dataset = dataset.shuffle(max(len(tokens), 1), seed=seed, reshuffle_each_iteration=True)
    return _finish(dataset.batch(batch_size))


def add_start_end(tokens, mask):
    """ids [B, T] + mask -> int32 [B, T + 2]: START w1..wn END then padding 0."""
    batch = tf.shape(tokens)[0]
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)  # [B]
    start = tf.fill([batch, 1], tf.constant(text.START_ID, tf.int32))
    padded = tf.concat([start, tokens, tf.zeros([batch, 1], tf.int32)], axis=1)  # [B, T + 2]
    positions = tf.range(tf.shape(padded)[1])[None, :]
    return tf.where(positions == (lengths + 1)[:, None], text.END_ID, padded)


def swap_left_right(tokens, vocabulary):
    """Token ids with the ids of "left" and "right" exchanged (unchanged if either is not in the vocabulary)."""
    left_id, right_id = vocabulary.id("left"), vocabulary.id("right")
    if text.UNKNOWN_ID in (left_id, right_id):
        return tokens
    swapped = tf.where(tokens == left_id, right_id, tokens)
    return tf.where(tokens == right_id, left_id, swapped)


def flip_batch(batch, vocabulary, seed=None):
    """Mirrors a random half of a pixel-mode batch: images, boxes, and "left" <-> "right" in the tokens."""
    flip = tf.random.uniform([tf.shape(batch["images"])[0]], seed=seed) < 0.5  # [B]
    batch = dict(batch)
    batch["images"] = tf.where(flip[:, None, None, None], tf.reverse(batch["images"], axis=[2]), batch["images"])
    flipped_boxes = boxes_lib.flip_boxes_horizontally(batch["boxes"], batch["region_mask"])
    batch["boxes"] = tf.where(flip[:, None, None], flipped_boxes, batch["boxes"])
    batch["tokens"] = tf.where(flip[:, None], swap_left_right(batch["tokens"], vocabulary), batch["tokens"])
    return batch


def _pairs_dataset(image_side, pairs, vocabulary, config, batch_size, shuffle, seed, captions, flip, extra=None):
    """Pixel mode, one example per (image, text) pair: shuffled (each epoch) indices -> image side -> batch -> tokens.

    ``pairs`` = (image index in records, text, image id) lists; ``extra`` adds per-pair arrays.
    """
    pair_image_index, pair_texts, pair_image_id = pairs
    slices = {
        "image_index": np.asarray(pair_image_index, dtype=np.int64),
        "text": np.asarray(pair_texts, dtype=object).astype(str) if len(pair_texts) else np.zeros([0], str),
        "image_id": np.asarray(pair_image_id, dtype=np.int64),
    }
    slices.update(extra or {})
    dataset = tf.data.Dataset.from_tensor_slices(slices)
    if shuffle:
        dataset = dataset.shuffle(max(len(pair_texts), 1), seed=seed, reshuffle_each_iteration=True)

    def load(pair):
        example = image_side(pair)
        example["text"] = pair["text"]
        example["image_id"] = pair["image_id"]
        return example

    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return _batch_pairs(dataset, vocabulary, config, batch_size, seed, captions, flip)


def _batch_pairs(examples, vocabulary, config, batch_size, seed, captions, flip, sentences=None):
    """Unbatched pairs (image side + `text`, or `sentence` rows of ``sentences``, and `image_id`) -> batches
    with `tokens` (+ `token_mask`)."""
    if sentences is None:
        table = vocabulary.id_table()

        def tokenize(batch):
            return text.encode_sentences(batch.pop("text"), table.lookup, config.max_words)

    else:
        encoder = sentences.encoder(vocabulary, config.max_words)

        def tokenize(batch):
            return encoder(batch.pop("sentence"))

    def encode(batch):
        tokens, mask = tokenize(batch)
        if captions:
            batch["tokens"] = add_start_end(tokens, mask)
        else:
            batch["tokens"], batch["token_mask"] = tokens, mask
        if flip:
            batch = flip_batch(batch, vocabulary, seed=seed)
        return batch

    return _finish(examples.batch(batch_size).map(encode, num_parallel_calls=tf.data.AUTOTUNE))


def _cached_pairs_dataset(records, features, vocabulary, config, batch_size, shuffle, seed, captions, flip, whole_image_only):
    if flip:
        raise ValueError("flip=True needs pixel mode; cached region features cannot be mirrored")
    pairs, sentences = _CachedSplit(records, features, whole_image_only).pairs(shuffle, seed, batch_size)
    return _batch_pairs(pairs, vocabulary, config, batch_size, seed, captions, flip=False, sentences=sentences)


def _sentence_pairs(records):
    image_index, texts, image_ids = [], [], []
    for index, record in enumerate(records):
        for sentence in record.sentences:
            image_index.append(index)
            texts.append(sentence.text)
            image_ids.append(record.image_id)
    return image_index, texts, image_ids


def ranking_dataset(
    records, image_root, boxes, vocabulary, config, batch_size, shuffle=True, seed=0, features=None, flip=False
):
    """(image regions, one of its sentences) pairs, one per sentence, reshuffled each epoch.

    Cached mode (``features`` a `FeatureStore`) streams the features from the shards: unshuffled in
    record order; shuffled through bounded buffers (`_CachedSplit.pairs`), not a full permutation.

    Batches: image side (pixel or cached) + `tokens` int32 [B, T], `token_mask` bool [B, T],
    `image_id` int64 [B]. ``flip=True`` mirrors half the pairs, swapping "left"/"right" in the tokens.
    """
    if features is not None:
        return _cached_pairs_dataset(
            records, features, vocabulary, config, batch_size, shuffle, seed, captions=False, flip=flip, whole_image_only=False
        )
    image_side = _ImageSide(records, image_root, boxes, config)
    return _pairs_dataset(
        image_side, _sentence_pairs(records), vocabulary, config, batch_size, shuffle, seed, captions=False, flip=flip
    )


def caption_dataset(
    records, image_root, vocabulary, config, batch_size, shuffle=True, seed=0, features=None, flip=False
):
    """(whole image, sentence) pairs: R = 1 region `[0, 0, 1, 1]`, `tokens` int32 [B, T + 2] START..END."""
    if features is not None:
        return _cached_pairs_dataset(
            records, features, vocabulary, config, batch_size, shuffle, seed, captions=True, flip=flip, whole_image_only=True
        )
    image_side = _ImageSide(records, image_root, None, config, whole_image_only=True)
    return _pairs_dataset(
        image_side, _sentence_pairs(records), vocabulary, config, batch_size, shuffle, seed, captions=True, flip=flip
    )


def _cached_region_caption_dataset(snippets, records, store, vocabulary, config, batch_size, shuffle, seed):
    index_of = {record.filename: index for index, record in enumerate(records)}
    region_texts = [[] for _ in records]
    for number, snippet in enumerate(snippets):
        if snippet["filename"] not in index_of:
            raise ValueError(f"snippet {number}: filename {snippet['filename']!r} is not among the records")
        region = snippet.get("region")
        if isinstance(region, bool) or not isinstance(region, int) or not 0 <= region < store.regions:
            raise ValueError(
                f"snippet {number} ({snippet['filename']}): cached region captioning needs `region`, an index into the "
                f"{store.regions} cached regions of {store.path}, received {region!r}"
            )
        region_texts[index_of[snippet["filename"]]].append((" ".join(snippet["words"]), region))  # load_snippets: a list
    # Only the images with snippets are read from the store.
    kept = [position for position, entries in enumerate(region_texts) if entries]
    split = _CachedSplit([records[position] for position in kept], store)
    pairs, sentences = split.pairs(shuffle, seed, batch_size, region_texts=[region_texts[position] for position in kept])
    return _batch_pairs(pairs, vocabulary, config, batch_size, seed, captions=True, flip=False, sentences=sentences)


def load_snippets(snippets):
    """A snippets list, or the path of a snippets JSON file -> list of dicts, checked.

    A file (the `vsa-tf align` output) is checked as `vsa_tf.align.snippets.read_snippets` checks it,
    every field (`snippet_format.validate_snippet`); an in-memory list needs only the fields region
    captioning reads (`REGION_CAPTION_FIELDS`), each checked the same way. The box must also have an
    area (x1 > x0, y1 > y0) and fit in float32, the pipeline's box dtype.

    Raises:
        ValueError: naming the file (or "snippets" for a list), the entry, the field and the received value.
    """
    source, required = "snippets", REGION_CAPTION_FIELDS
    if isinstance(snippets, (str, os.PathLike)):
        source, required = os.fspath(snippets), snippet_format.SNIPPET_FIELDS
        snippets = readers.load_json(source, "snippets JSON")
    if not isinstance(snippets, list):
        raise ValueError(f"{source}: expected a list of snippets, received {type(snippets).__name__}")
    for index, snippet in enumerate(snippets):
        where = f"{source}: snippet {index}"
        snippet_format.validate_snippet(snippet, where, required=required)
        box = snippet["box"]
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"{where} ({snippet['filename']}): `box` must have x1 > x0 and y1 > y0, received {box!r}")
        if max(abs(value) for value in box) > _FLOAT32_MAX:
            raise ValueError(f"{where} ({snippet['filename']}): `box` values must fit in float32, received {box!r}")
    return snippets


def region_caption_dataset(snippets, records, image_root, vocabulary, config, batch_size, shuffle=True, seed=0, features=None):
    """(region, snippet) pairs: R = 1 region, the snippet's box; `tokens` START snippet words END.

    Pixel mode pools the snippet's `box` from the image. Cached mode (``features`` a `FeatureStore`)
    reads the snippet's `region` (an index into the image's cached regions: 0 the whole image, k the
    k-th box of the boxes file the store was cached from) and streams it from the shards; unshuffled,
    the pairs come grouped by image in record order (a snippet list in that order keeps its order).

    Args:
        snippets: list of `{"filename", "words", "box", ...}` (the `vsa-tf align` output) or its path;
            cached mode also needs `region` in each.
        features: optional `FeatureStore` (cached mode).
    """
    if features is not None:
        return _cached_region_caption_dataset(load_snippets(snippets), records, features, vocabulary, config, batch_size, shuffle, seed)
    snippets = load_snippets(snippets)
    index_of = {record.filename: index for index, record in enumerate(records)}
    image_side = _ImageSide(records, image_root, None, config, whole_image_only=True)
    image_index, texts, image_ids, snippet_boxes = [], [], [], []
    for number, snippet in enumerate(snippets):
        if snippet["filename"] not in index_of:
            raise ValueError(f"snippet {number}: filename {snippet['filename']!r} is not among the records")
        index = index_of[snippet["filename"]]
        image_index.append(index)
        texts.append(" ".join(snippet["words"]))
        image_ids.append(records[index].image_id)
        snippet_boxes.append([float(value) for value in snippet["box"]])
    extra = {"snippet_box": np.asarray(snippet_boxes, dtype=np.float32).reshape(-1, 4)}
    pairs = (image_index, texts, image_ids)
    return _pairs_dataset(
        image_side, pairs, vocabulary, config, batch_size, shuffle, seed, captions=True, flip=False, extra=extra
    )

