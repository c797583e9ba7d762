"""Caption evaluation: coco-caption metrics, the nearest-neighbour baseline, verbatim copies.

`caption_scores` reproduces pycocoevalcap's `COCOEvalCap.evaluate` exactly (PTB tokenisation, then
BLEU-1..4, METEOR, ROUGE-L, CIDEr, and SPICE when its Stanford models are installed), without the
COCO-object plumbing. The PTB tokenizer, METEOR and SPICE are Java programs: references and candidates
are tokenised in one PTB tokenizer run, and one METEOR process is shared by every call of a Python
process (started on first use, stopped at exit or by `close_meteor()`).
"""

import atexit
import collections
import logging
import os
import shutil
import threading

import numpy as np

from vsa_tf.data.text import tokenize

logger = logging.getLogger(__name__)

METRIC_NAMES = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


class JavaNotFoundError(ValueError):
    """No `java` on PATH. A ValueError so that the CLI reports it as a one-line error."""


def _require_java():
    if shutil.which("java") is None:
        raise JavaNotFoundError(
            "Java was not found on PATH: pycocoevalcap's PTB tokenizer and METEOR (and SPICE) run Java "
            "programs. Install a Java runtime (e.g. `apt-get install default-jre-headless`) and retry."
        )


def spice_models_available():
    """Whether SPICE's Stanford CoreNLP jars are installed (pycocoevalcap would download them otherwise)."""
    import pycocoevalcap.spice.get_stanford_models as stanford_models

    library = os.path.join(stanford_models.SPICEDIR, stanford_models.SPICELIB)
    return all(
        os.path.exists(os.path.join(library, name.format(stanford_models.JAR)))
        for name in ("{}.jar", "{}-models.jar")
    )


# pycocoevalcap's PTB tokenizer drops empty lines (and then fails), so an empty generated caption is
# scored as this word, which matches no reference word after tokenisation ("[UNK]" -> "unk"); a real
# word such as "a" would earn an empty caption unigram credit.
EMPTY_CAPTION = "unk"


def non_empty(candidates):
    """`candidates` ({id: caption}) with every empty or blank caption replaced by `EMPTY_CAPTION`."""
    return {key: text if text.strip() else EMPTY_CAPTION for key, text in candidates.items()}


def _validate_captions(references, candidates):
    if not isinstance(references, dict) or not isinstance(candidates, dict):
        raise ValueError(
            "`references` and `candidates` must be dicts keyed by id, received "
            f"{type(references).__name__} and {type(candidates).__name__}"
        )
    if set(references) != set(candidates):
        only_references = sorted(map(str, set(references) - set(candidates)))[:5]
        only_candidates = sorted(map(str, set(candidates) - set(references)))[:5]
        raise ValueError(
            "`references` and `candidates` must have the same ids; only in references: "
            f"{only_references}, only in candidates: {only_candidates}"
        )
    if not references:
        raise ValueError("No captions to evaluate (received empty dicts)")
    for key, strings in references.items():
        if isinstance(strings, str) or not strings or not all(isinstance(text, str) for text in strings):
            raise ValueError(f"references[{key!r}] must be a non-empty list of strings, received {strings!r}")
    for key, text in candidates.items():
        if not isinstance(text, str):
            raise ValueError(f"candidates[{key!r}] must be one string, received {text!r}")


# The METEOR scorer shared by every `caption_scores` call of this process: (owner process id, scorer).
_meteor_lock = threading.Lock()
_shared_meteor = None


def _stop_meteor(scorer):
    """Stops a pycocoevalcap `Meteor`'s Java process without waiting on its lock."""
    process = getattr(scorer, "meteor_p", None)
    if process is None:
        return
    # A `compute_score` that raised leaves the scorer's lock held, and its `__del__` takes that lock.
    scorer.lock = threading.Lock()
    try:
        process.stdin.close()
    except OSError:  # the process already exited: flushing its input pipe fails
        pass
    process.kill()
    process.wait()


def _meteor_score(ground_truth, results):
    """pycocoevalcap's corpus METEOR, from the process-wide scorer (started on first use).

    Every `EVAL` line is scored on its own statistics, so reusing the Java process gives the values of
    a fresh `Meteor()`. A failed exchange leaves the pipe out of step: that scorer is stopped and the
    next call starts a new one.
    """
    global _shared_meteor
    from pycocoevalcap.meteor import meteor as meteor_module

    with _meteor_lock:
        # Also replaced when `Meteor` is not the class it was made from (e.g. patched by a test).
        if _shared_meteor is None or type(_shared_meteor[1]) is not meteor_module.Meteor:
            if _shared_meteor is not None:
                _stop_meteor(_shared_meteor[1])
            _shared_meteor = (os.getpid(), meteor_module.Meteor())
        scorer = _shared_meteor[1]
        try:
            return float(scorer.compute_score(ground_truth, results)[0])
        except BaseException:
            _shared_meteor = None
            _stop_meteor(scorer)
            raise


def close_meteor():
    """Stops the shared METEOR Java process, if any (also run at exit); the next call starts a new one."""
    global _shared_meteor
    with _meteor_lock:
        shared, _shared_meteor = _shared_meteor, None
    if shared is not None and shared[0] == os.getpid():
        _stop_meteor(shared[1])


def _forget_inherited_meteor():
    # In a forked child the scorer's process belongs to the parent: drop it without stopping it (its
    # `__del__` would kill the parent's process), and renew the locks a parent thread may have held.
    global _meteor_lock, _shared_meteor
    _meteor_lock = threading.Lock()
    if _shared_meteor is not None:
        scorer = _shared_meteor[1]
        scorer.lock = threading.Lock()
        process = getattr(scorer, "meteor_p", None)
        if process is not None:
            process.returncode = 0  # marks it finished, so `kill()` / `wait()` leave it alone
        _shared_meteor = None


atexit.register(close_meteor)
os.register_at_fork(after_in_child=_forget_inherited_meteor)


def caption_scores(references, candidates, use_spice=False):
    """coco-caption metrics of `candidates` against `references`, exactly as pycocoevalcap computes them.

    Args:
        references: {id: [reference string, ...]}.
        candidates: {id: candidate string}, the same ids.
        use_spice: also compute SPICE when its Stanford models are present locally; if they are not,
            SPICE is left out with a one-line notice (they are never downloaded from here).

    Returns:
        {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"} (+ "SPICE") as floats in
        pycocoevalcap's scale (0..1, CIDEr 0..10).

    Reference:
        Chen et al., "Microsoft COCO Captions: Data Collection and Evaluation Server", 2015.
    """
    _validate_captions(references, candidates)
    _require_java()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # One Java run for both sides: with `-preserveLines` every caption is one line tokenised on its own,
    # so this equals pycocoevalcap's two runs (one for the references, one for the candidates).
    tokenized = PTBTokenizer().tokenize(
        {
            **{("reference", key): [{"caption": text} for text in strings] for key, strings in references.items()},
            **{("candidate", key): [{"caption": candidates[key]}] for key in references},
        }
    )
    ground_truth = {key: tokenized.get(("reference", key), []) for key in references}
    results = {key: tokenized.get(("candidate", key), []) for key in references}
    if any(len(ground_truth[key]) != len(references[key]) or len(results[key]) != 1 for key in references):
        raise ValueError(
            "The PTB tokenizer returned fewer lines than captions; check for captions made only of "
            "whitespace or line breaks"
        )

    scores = {}
    bleu, _ = Bleu(4).compute_score(ground_truth, results)
    scores.update({f"Bleu_{order + 1}": float(value) for order, value in enumerate(bleu)})
    scores["METEOR"] = _meteor_score(ground_truth, results)
    scores["ROUGE_L"] = float(Rouge().compute_score(ground_truth, results)[0])
    scores["CIDEr"] = float(Cider().compute_score(ground_truth, results)[0])
    if use_spice:
        if spice_models_available():
            from pycocoevalcap.spice.spice import Spice

            scores["SPICE"] = float(Spice().compute_score(ground_truth, results)[0])
        else:
            logger.warning(
                "SPICE left out: its Stanford CoreNLP models are not installed "
                "(run pycocoevalcap/spice/get_stanford_models.py on a machine with network access)."
            )
    return scores


def nearest_neighbour_indices(query_features, train_features, chunk_size=1024):
    """Index of the nearest training vector in L2 distance for each query (ties: lowest index). [Q]."""
    query_features = np.asarray(query_features, dtype=np.float64)
    train_features = np.asarray(train_features, dtype=np.float64)
    if query_features.ndim != 2 or train_features.ndim != 2 or query_features.shape[1] != train_features.shape[1]:
        raise ValueError(
            "`query_features` and `train_features` must have shapes [Q, D] and [N, D], received "
            f"{query_features.shape} and {train_features.shape}"
        )
    if len(train_features) == 0:
        raise ValueError("`train_features` is empty: there is no training image to copy a caption from")
    train_norms = np.sum(train_features**2, axis=1)  # [N]
    nearest = np.empty([len(query_features)], dtype=np.int64)
    for start in range(0, len(query_features), chunk_size):
        queries = query_features[start : start + chunk_size]
        # ||q − t||² = ||q||² − 2 q·t + ||t||²; ||q||² is the same for every t of a row.
        distances = train_norms[None, :] - 2.0 * queries @ train_features.T
        nearest[start : start + chunk_size] = np.argmin(distances, axis=1)
    return nearest


def _tokenize_all(strings):
    """The project's tokenisation of many strings in one TF call -> list of token lists."""
    strings = list(strings)
    if not strings:
        return []
    return [[word.decode("utf-8") for word in words] for words in tokenize(strings).to_list()]


def _ngram_counts(tokens, order):
    return collections.Counter(tuple(tokens[i : i + order]) for i in range(len(tokens) - order + 1))


def _overlap_f1(tokens, other_tokens, max_order=2):
    """Mean over n = 1..max_order of the clipped n-gram F1 between two token lists."""
    values = []
    for order in range(1, max_order + 1):
        counts, other_counts = _ngram_counts(tokens, order), _ngram_counts(other_tokens, order)
        total, other_total = sum(counts.values()), sum(other_counts.values())
        if total == 0 or other_total == 0:
            values.append(0.0)
            continue
        matches = sum((counts & other_counts).values())
        values.append(2.0 * matches / (total + other_total))
    return float(np.mean(values))


def consensus_caption(captions, tokens=None):
    """The caption agreeing most with the others of the same image (mean 1-2-gram F1; ties: first)."""
    if len(captions) == 1:
        return captions[0]
    tokens = _tokenize_all(captions) if tokens is None else tokens
    agreement = [
        np.mean([_overlap_f1(tokens[i], tokens[j]) for j in range(len(tokens)) if j != i]) for i in range(len(tokens))
    ]
    return captions[int(np.argmax(agreement))]


def nearest_neighbour_captions(query_features, train_features, train_captions, choose="consensus"):
    """The nearest-neighbour baseline of Table 2: each query gets a caption of its nearest training image.

    Args:
        query_features: array [Q, D] (e.g. CNN features of the test images).
        train_features: array [N, D] of the training images.
        train_captions: list of N lists of caption strings.
        choose: which of the neighbour's captions to return: "consensus" (the one with the highest mean
            1-2-gram F1 against its siblings, a one-image version of Devlin et al.'s consensus
            re-ranking; this avoids copying an idiosyncratic caption) or "first".

    Returns:
        list of Q strings.

    Reference:
        Karpathy & Fei-Fei, CVPR 2015, Table 2 ("Nearest Neighbor").
    """
    if choose not in ("consensus", "first"):
        raise ValueError(f"`choose` must be 'consensus' or 'first', received {choose!r}")
    train_features = np.asarray(train_features)
    if len(train_captions) != len(train_features):
        raise ValueError(
            f"`train_captions` must have one list per training image ({len(train_features)}), received "
            f"{len(train_captions)}"
        )
    for index, captions in enumerate(train_captions):
        if isinstance(captions, str) or not captions:
            raise ValueError(f"train_captions[{index}] must be a non-empty list of strings, received {captions!r}")
    nearest = nearest_neighbour_indices(query_features, train_features)
    needed = sorted(set(nearest.tolist()))
    if choose == "first":
        chosen = {index: train_captions[index][0] for index in needed}
    else:
        flat = [text for index in needed for text in train_captions[index]]
        flat_tokens = _tokenize_all(flat)
        chosen, offset = {}, 0
        for index in needed:
            count = len(train_captions[index])
            chosen[index] = consensus_caption(list(train_captions[index]), flat_tokens[offset : offset + count])
            offset += count
    return [chosen[index] for index in nearest.tolist()]


def verbatim_fraction(candidates, training_captions):
    """Fraction of candidate captions found verbatim among the training captions.

    Both sides are compared after the project's tokenisation (lowercase, every run of non-alphanumerics
    separates words, words joined by one space), so punctuation and case do not matter.

    Args:
        candidates: {id: str} or a list of strings.
        training_captions: iterable of strings, or of lists of strings (one list per image).
    """
    if isinstance(candidates, dict):
        candidates = list(candidates.values())
    candidates = list(candidates)
    if not candidates:
        raise ValueError("No candidate captions (received an empty collection)")
    training = [text for item in training_captions for text in ([item] if isinstance(item, str) else item)]
    known = {" ".join(tokens) for tokens in _tokenize_all(training)}
    found = sum(" ".join(tokens) in known for tokens in _tokenize_all(candidates))
    return found / len(candidates)


def distinct_fraction(candidates):
    """Fraction of distinct captions among the candidates, after the project's tokenisation.

    1.0: every image got its own caption; 1 / N: one sentence for every image (a collapsed captioner,
    whose BLEU and CIDEr can still look plausible). Reported beside the metrics by `evaluate-captions`.

    Args:
        candidates: {id: str} or a list of strings.
    """
    if isinstance(candidates, dict):
        candidates = list(candidates.values())
    candidates = list(candidates)
    if not candidates:
        raise ValueError("No candidate captions (received an empty collection)")
    return len({" ".join(tokens) for tokens in _tokenize_all(candidates)}) / len(candidates)
