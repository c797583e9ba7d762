"""Image-sentence retrieval: the full score matrix of eq. 8 in bounded memory, and Table-1 metrics.

`score_matrix` computes S_kl = Σ_t max_i v_iᵀ s_t for every image k and sentence l in tiles: one
matmul [R·tile_images, h] × [h, tile_sentences·T] per tile, then a max over regions and a sum over
words, so memory is the inputs plus one tile (COCO 5K: 5,000 × 25,000 in a few GB). The masks are
folded into the data beforehand (a padding region becomes a copy of a valid region of its image, a
padding word the zero vector), so a tile costs its matmul plus two cheap reductions: ~1.0x the time
of the bare matmul of the same shape.

Ranks in `retrieval_metrics` are found by counting, not sorting: the rank of a true item is 1 plus
the number of wrong items scoring at least as high as it. Ties are therefore counted against the
model (pessimistic): a model that gives every pair the same score gets the worst rank, never rank 1.
"""

import numpy as np
import tensorflow as tf

RECALL_LEVELS = (1, 5, 10)


@tf.function(reduce_retracing=True)
def _score_tile(regions, words):
    # regions [R, a, h] (region-major), padding regions already replaced by a valid region of the same
    # image, so they never change the max; words [b, T, h], padding words already zero, so they add
    # max_i v_i·0 = 0. The masks are thereby folded into the data and the tile is one matmul + reductions.
    num_regions, num_images, hidden = tf.unstack(tf.shape(regions))
    num_sentences, num_words = tf.shape(words)[0], tf.shape(words)[1]
    products = tf.matmul(
        tf.reshape(regions, [-1, hidden]), tf.reshape(words, [-1, hidden]), transpose_b=True
    )  # [R·a, b·T]
    # Region-major rows make the max over regions an elementwise max of R contiguous slabs; reducing
    # the middle axis of an image-major [a, R, b·T] measured ~1.7x slower for the whole tile.
    best_region = tf.reduce_max(tf.reshape(products, [num_regions, -1]), axis=0)  # [a·b·T]
    return tf.reduce_sum(tf.reshape(best_region, [num_images, num_sentences, num_words]), axis=2)  # [a, b]


def _fold_masks_into_regions(region_vectors, region_mask):
    """Replaces each padding region by the image's first valid region (the max is then unchanged)."""
    first_valid = np.argmax(region_mask, axis=1)  # [I]
    substitute = region_vectors[np.arange(len(region_vectors)), first_valid]  # [I, h]
    return np.where(region_mask[:, :, None], region_vectors, substitute[:, None, :])


def score_matrix(
    region_vectors, region_mask, word_vectors, word_mask, image_tile=100, sentence_tile=500
):
    """All image×sentence alignment scores S_kl = Σ_t max_i v_iᵀ s_t (eq. 8), computed in tiles.

    Padding regions never win the max over regions; padding words add 0. Every image needs at least
    one valid region (region 0, the whole image, always is).

    Args:
        region_vectors: float array [I, R, h] of region vectors v (from `encode_images`).
        region_mask: bool array [I, R].
        word_vectors: float array [S, T, h] of word vectors s (from `encode_sentences`).
        word_mask: bool array [S, T].
        image_tile: images per tile; a tile's matmul output holds
            image_tile·R × sentence_tile·T float32 values (defaults: 2,000 × 6,000 = 48 MB at R=20, T=12).
        sentence_tile: sentences per tile.

    Returns:
        np.float32 array [I, S].

    Reference:
        Karpathy & Fei-Fei, CVPR 2015, equation 8.
    """
    region_vectors = np.asarray(region_vectors, dtype=np.float32)
    word_vectors = np.asarray(word_vectors, dtype=np.float32)
    region_mask = np.asarray(region_mask, dtype=bool)
    word_mask = np.asarray(word_mask, dtype=bool)
    if region_vectors.ndim != 3 or word_vectors.ndim != 3:
        raise ValueError(
            "`region_vectors` and `word_vectors` must have shapes [I, R, h] and [S, T, h], received "
            f"{region_vectors.shape} and {word_vectors.shape}"
        )
    if region_vectors.shape[2] != word_vectors.shape[2]:
        raise ValueError(
            f"Region and word vectors must have the same size h, received {region_vectors.shape[2]} "
            f"and {word_vectors.shape[2]}"
        )
    if region_mask.shape != region_vectors.shape[:2]:
        raise ValueError(
            f"`region_mask` must have shape {region_vectors.shape[:2]}, received {region_mask.shape}"
        )
    if word_mask.shape != word_vectors.shape[:2]:
        raise ValueError(f"`word_mask` must have shape {word_vectors.shape[:2]}, received {word_mask.shape}")
    empty_images = np.flatnonzero(~region_mask.any(axis=1))
    if len(empty_images):
        raise ValueError(
            f"Every image needs at least one valid region; images without one: {empty_images[:10].tolist()}"
        )
    for name, value in (("image_tile", image_tile), ("sentence_tile", sentence_tile)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, received {value!r}")

    num_images, num_sentences = region_vectors.shape[0], word_vectors.shape[0]
    scores = np.empty([num_images, num_sentences], dtype=np.float32)
    if num_images == 0 or num_sentences == 0:
        return scores
    image_tile = min(int(image_tile), num_images)
    sentence_tile = min(int(sentence_tile), num_sentences)
    # Image tiles are prepared once (region-major [R, tile, h]); sentence tiles inside the outer loop.
    image_tiles = []
    for image_start in range(0, num_images, image_tile):
        regions = _fold_masks_into_regions(
            region_vectors[image_start : image_start + image_tile], region_mask[image_start : image_start + image_tile]
        )
        image_tiles.append((image_start, tf.constant(np.ascontiguousarray(regions.transpose(1, 0, 2)))))
    for sentence_start in range(0, num_sentences, sentence_tile):
        sentence_end = min(sentence_start + sentence_tile, num_sentences)
        words = np.where(
            word_mask[sentence_start:sentence_end, :, None], word_vectors[sentence_start:sentence_end], 0.0
        ).astype(np.float32)
        words = tf.constant(words)
        for image_start, regions in image_tiles:
            image_end = image_start + regions.shape[1]
            scores[image_start:image_end, sentence_start:sentence_end] = _score_tile(regions, words).numpy()
    return scores


def encode_dataset(model, image_dataset, sentence_dataset):
    """Runs `model.encode_images` / `model.encode_sentences` over two batched datasets (no shuffle).

    Any model with those two methods works (the alignment model); this module imports no model.

    Returns:
        `(region_vectors [I, R, h], region_mask [I, R], word_vectors [S, T, h], word_mask [S, T])`
        numpy arrays; sentence batches of different lengths T are zero-padded to the longest.
    """
    regions, region_masks = _encode_batches(model.encode_images, image_dataset)
    words, word_masks = _encode_batches(model.encode_sentences, sentence_dataset)
    if not regions or not words:
        raise ValueError(f"Cannot score an empty split: {len(regions)} image batches, {len(words)} sentence batches")
    return (
        np.concatenate(regions),
        np.concatenate(region_masks).astype(bool),
        _concatenate_padded(words),
        _concatenate_padded(word_masks).astype(bool),
    )


def _encode_batches(encode, dataset):
    vectors, masks = [], []
    for batch in dataset:
        batch_vectors, batch_mask = encode(batch, training=False)
        vectors.append(np.asarray(batch_vectors))
        masks.append(np.asarray(batch_mask))
    return vectors, masks


def _concatenate_padded(arrays):
    # Sentence batches may differ in length T; pad each to the longest (padding words are masked).
    length = max(array.shape[1] for array in arrays)
    padded = [np.pad(array, [(0, 0), (0, length - array.shape[1])] + [(0, 0)] * (array.ndim - 2)) for array in arrays]
    return np.concatenate(padded)


def score_dataset(model, image_dataset, sentence_dataset, image_tile=100):
    """The [I, S] score matrix of every image x sentence of two batched datasets, for an alignment model.

    `score_matrix` (eq. 8, in tiles) unless `model.score` is "defrag": the DeFrag score (eq. 7) is the
    model's own `alignment_score`, applied to `image_tile` images at a time.
    """
    region_vectors, region_mask, word_vectors, word_mask = encode_dataset(model, image_dataset, sentence_dataset)
    if getattr(model, "score", "max") == "defrag":
        return np.concatenate(
            [
                np.asarray(
                    model.alignment_score(
                        region_vectors[start : start + image_tile], word_vectors, region_mask[start : start + image_tile], word_mask
                    )
                )
                for start in range(0, len(region_vectors), image_tile)
            ]
        )
    return score_matrix(region_vectors, region_mask, word_vectors, word_mask)


def _validate_scores(scores, sentence_image):
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"`scores` must have shape [num_images, num_sentences], received shape {scores.shape}")
    sentence_image = np.asarray(sentence_image)
    if sentence_image.shape != (scores.shape[1],):
        raise ValueError(
            f"`sentence_image` must give one image index per sentence ({scores.shape[1]}), received shape "
            f"{sentence_image.shape}"
        )
    if sentence_image.size and (
        not np.issubdtype(sentence_image.dtype, np.integer)
        or sentence_image.min() < 0
        or sentence_image.max() >= scores.shape[0]
    ):
        raise ValueError(
            f"`sentence_image` must hold integer image indices in [0, {scores.shape[0]}), received "
            f"dtype {sentence_image.dtype}, range [{sentence_image.min()}, {sentence_image.max()}]"
        )
    if scores.shape[1] == 0:
        raise ValueError("`scores` has no sentences to rank")
    if np.isnan(scores).any():
        raise ValueError("`scores` contains NaN")
    return scores, sentence_image.astype(np.int64)


def image_search_ranks(scores, sentence_image, chunk_size=256):
    """1-based rank of the true image for each sentence (ties counted against the model). [S] int64."""
    scores, sentence_image = _validate_scores(scores, sentence_image)
    num_sentences = scores.shape[1]
    true_scores = scores[sentence_image, np.arange(num_sentences)]  # [S]
    at_least_as_high = np.zeros([num_sentences], dtype=np.int64)
    for start in range(0, scores.shape[0], chunk_size):
        at_least_as_high += (scores[start : start + chunk_size] >= true_scores[None, :]).sum(axis=0)
    return at_least_as_high  # the true image itself counts once: rank = 1 + wrong images >= true


def image_annotation_ranks(scores, sentence_image, chunk_size=256):
    """1-based rank of each image's best-ranked true sentence (ties counted against the model).

    Returns:
        (ranks [n] int64, image_indices [n]) for the n images that have at least one sentence.
    """
    scores, sentence_image = _validate_scores(scores, sentence_image)
    num_images, num_sentences = scores.shape
    true_scores = scores[sentence_image, np.arange(num_sentences)]  # [S]
    best_true = np.full([num_images], -np.inf, dtype=np.float64)
    np.maximum.at(best_true, sentence_image, true_scores)
    true_at_least_best = np.zeros([num_images], dtype=np.int64)
    np.add.at(true_at_least_best, sentence_image, true_scores >= best_true[sentence_image])
    at_least_best = np.zeros([num_images], dtype=np.int64)
    for start in range(0, num_images, chunk_size):
        rows = scores[start : start + chunk_size]
        at_least_best[start : start + chunk_size] = (rows >= best_true[start : start + chunk_size, None]).sum(axis=1)
    has_sentence = np.bincount(sentence_image, minlength=num_images) > 0
    ranks = at_least_best - true_at_least_best + 1  # 1 + wrong sentences scoring >= the best true one
    return ranks[has_sentence], np.flatnonzero(has_sentence)


def rank_summary(ranks):
    """{"r1", "r5", "r10"} in percent, "medr" (floor of the median, as in the paper's code), "meanr"."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        raise ValueError("No ranks to summarise (received an empty array)")
    summary = {f"r{level}": float(100.0 * np.mean(ranks <= level)) for level in RECALL_LEVELS}
    summary["medr"] = float(np.floor(np.median(ranks)))
    summary["meanr"] = float(np.mean(ranks))
    return summary


def retrieval_metrics(scores, sentence_image):
    """Table-1 retrieval metrics in both directions.

    Args:
        scores: array [num_images, num_sentences], higher = better match.
        sentence_image: int array [num_sentences], the image index of each sentence.

    Returns:
        {"image_annotation": {"r1", "r5", "r10", "medr", "meanr"}, "image_search": {...}}: recalls in
        percent, ranks 1-based. Annotation ranks, for each image with sentences, the best-ranked of its
        true sentences among all sentences; search ranks the true image of each sentence among all
        images. Ties count against the model (see the module docstring).

    Example:

    >>> scores = np.array([[3.0, 1.0], [2.0, 4.0]])
    >>> retrieval_metrics(scores, [0, 1])["image_search"]["r1"]
    100.0
    """
    annotation_ranks, _ = image_annotation_ranks(scores, sentence_image)
    search_ranks = image_search_ranks(scores, sentence_image)
    return {"image_annotation": rank_summary(annotation_ranks), "image_search": rank_summary(search_ranks)}


def retrieval_report(scores, sentence_image):
    """What a retrieval evaluation reports: `retrieval_metrics`, `n_images`, `n_sentences`, and `coco_1k`
    (the COCO protocol of 5 folds of 1K images) when there are at least 5,000 images."""
    scores = np.asarray(scores)
    report = retrieval_metrics(scores, sentence_image)
    num_images, num_sentences = scores.shape
    if num_images >= 5000:
        report["coco_1k"] = coco_1k_metrics(scores, sentence_image)
    report["n_images"] = int(num_images)
    report["n_sentences"] = int(num_sentences)
    return report


def fold_metrics(scores, sentence_image, fold_size=1000, num_folds=5):
    """Metrics averaged over `num_folds` consecutive folds of `fold_size` images and their sentences."""
    scores, sentence_image = _validate_scores(scores, sentence_image)
    if scores.shape[0] < fold_size * num_folds:
        raise ValueError(
            f"{num_folds} folds of {fold_size} images need {fold_size * num_folds} images, received "
            f"{scores.shape[0]}"
        )
    folds = []
    for fold in range(num_folds):
        first, last = fold * fold_size, (fold + 1) * fold_size
        sentences = np.flatnonzero((sentence_image >= first) & (sentence_image < last))
        folds.append(retrieval_metrics(scores[first:last][:, sentences], sentence_image[sentences] - first))
    return {
        direction: {key: float(np.mean([fold[direction][key] for fold in folds])) for key in folds[0][direction]}
        for direction in folds[0]
    }


def coco_1k_metrics(scores, sentence_image):
    """The COCO "1K" protocol: metrics averaged over 5 folds of 1,000 test images (images 0..4,999)."""
    return fold_metrics(scores, sentence_image, fold_size=1000, num_folds=5)


def coco_5k_metrics(scores, sentence_image):
    """The COCO "5K" protocol: `retrieval_metrics` over all 5,000 test images and their sentences."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[0] != 5000:
        raise ValueError(f"The 5K protocol needs scores for exactly 5,000 images, received shape {scores.shape}")
    return retrieval_metrics(scores, sentence_image)
