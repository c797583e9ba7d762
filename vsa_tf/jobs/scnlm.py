"""Jobs of the SC-NLM (Kiros et al. 2014, section 4): train on an embedding run's content vectors, generate, evaluate.

An SC-NLM run folder (`vsa_tf.jobs.run_folder`) holds `config.json` (an `SCNLMConfig`, kind "scnlm",
naming its embedding run), the embedding run's `vocabulary.txt`, `tags.txt` (the tag vocabulary),
`structures.json` (the training tag sequences that generation samples from), `model.weights.h5`,
`backup/` and `history.csv`.
"""

import keras
import numpy as np

from vsa_tf.config import SCNLMConfig
from vsa_tf.data import pipelines
from vsa_tf.data import pos_tags as pos_tags_lib
from vsa_tf.data import text as text_lib
from vsa_tf.evaluation import captions as caption_metrics
from vsa_tf.jobs import run_folder, trainer
from vsa_tf.jobs.builders import build_scnlm_model
from vsa_tf.jobs.embedding import load_data
from vsa_tf.jobs.retrieval import embed_images


def encode_caption_examples(records, tags_by_filename, vocabulary, tag_vocabulary, max_words):
    """Arrays for SC-NLM training: tokens int32 [N, T + 2], tags int32 [N, T + 1], image_index int64 [N].

    tokens = START w_1..w_n END then 0; tags[i] is the tag of tokens[i + 1] (END tag for END, 0 padding).
    """
    tokens, tags, image_index = [], [], []
    for index, record in enumerate(records):
        for sentence, sentence_tags in zip(record.sentences, tags_by_filename[record.filename]):
            words = sentence.tokens[:max_words]
            ids = [text_lib.START_ID] + vocabulary.encode(words) + [text_lib.END_ID]
            tag_ids = tag_vocabulary.encode(list(sentence_tags[: len(words)])) + [pos_tags_lib.END_TAG_ID]
            tokens.append(ids + [text_lib.PAD_ID] * (max_words + 2 - len(ids)))
            tags.append(tag_ids + [pos_tags_lib.PAD_TAG_ID] * (max_words + 1 - len(tag_ids)))
            image_index.append(index)
    return (
        np.asarray(tokens, np.int32).reshape(-1, max_words + 2),
        np.asarray(tags, np.int32).reshape(-1, max_words + 1),
        np.asarray(image_index, np.int64),
    )


def sample_structures(structures, count, seed=0):
    """`count` tag-id sequences drawn (with replacement) from `structures`, padded with 0: int32 [count, L]."""
    if not structures:
        raise ValueError("no training tag sequences to sample structures from")
    rng = np.random.default_rng(seed)
    chosen = [structures[i] for i in rng.integers(0, len(structures), size=count)]
    length = max(len(item) for item in chosen)
    return np.asarray([list(item) + [0] * (length - len(item)) for item in chosen], np.int32).reshape(count, length)


def _check_same_image_side(data_config, embedding_data, embedding_run):
    """The content vectors come from the embedding run's image encoder: feed it images as it was trained."""
    if data_config.features is None and embedding_data.features is None:
        if tuple(data_config.image_size) != tuple(embedding_data.image_size):
            raise ValueError(
                f"data.image_size {tuple(data_config.image_size)} differs from the image size the embedding run "
                f"{embedding_run} was trained with, {tuple(embedding_data.image_size)}; its image encoder gives "
                "the content vectors, so use the same size (vsa-tf train-scnlm takes it from the run when "
                "--image-size is left out)"
            )


class SCNLMTask(trainer.TrainingTask):
    """Trains an `SCNLMModel` on the sentences of a dataset and the content vectors of an embedding run."""

    kind = "scnlm"
    config_class = SCNLMConfig
    path_fields = ("embedding_run", "truth")
    embedding = None  # the embedding `Run`, loaded by `prepare`

    def prepare(self, config):
        self.embedding = run_folder.Run.load(config.embedding_run, "embedding")
        data_config = config.data if config.data.dataset else self.embedding.config.data
        _check_same_image_side(data_config, self.embedding.config.data, config.embedding_run)
        return super().prepare(config.replace(data=data_config))

    def load_data(self, config):
        tagger = pos_tags_lib.make_tagger(config.tagger)  # first: a missing `tagger` extra fails before the data loads
        data = super().load_data(config)
        truth = config.truth if config.tagger == "truth" else None
        data.extras["tags_by_filename"] = pos_tags_lib.dataset_tags(data.dataset, truth_path=truth, tagger=tagger)
        data.extras["tag_vocabulary"] = pos_tags_lib.TagVocabulary()
        return data

    def build_vocabulary(self, config, data):
        return self.embedding.vocabulary  # the words the embedding run's sentence encoder knows

    def build_datasets(self, run, data):
        config = run.config

        def examples(split, shuffle):
            records = data.split(split)
            if not records:
                return None, []
            content = embed_images(self.embedding.model, records, config.data, data.boxes, data.store)
            tokens, tags, image_index = encode_caption_examples(
                records, data.extras["tags_by_filename"], run.vocabulary, data.extras["tag_vocabulary"], config.data.max_words
            )
            structures = [[int(tag) for tag in row if tag > pos_tags_lib.END_TAG_ID] for row in tags]
            batches = pipelines.scnlm_dataset(tokens, tags, content[image_index], config.batch_size, shuffle=shuffle, seed=config.seed)
            return batches, structures

        train_batches, data.extras["structures"] = examples("train", True)
        validation_batches, _ = examples("val", False)
        # Here, not in `write_files`: the trainer writes the task's files before it builds the datasets.
        run.write_json(run_folder.STRUCTURES_FILE, data.extras["structures"])
        return train_batches, validation_batches

    def write_files(self, run, data):
        data.extras["tag_vocabulary"].save(run.path(run_folder.TAGS_FILE))

    def build_model(self, run, train_batches):
        model = build_scnlm_model(run.config, run.vocabulary.size, pos_tags_lib.TagVocabulary().size, self.embedding.config.embedding_dim)
        model.compile(optimizer=keras.optimizers.Adam(run.config.learning_rate))
        return model

    def run_extras(self, data):
        return {"tags": data.extras["tag_vocabulary"], "structures": data.extras["structures"], "embedding": self.embedding}


def train_scnlm(config, run_dir, verbose="auto", strategy="default"):
    """Trains an SC-NLM on the content vectors of an embedding run (the `vsa_tf.jobs.trainer.train` skeleton).

    As `vsa_tf.jobs.embedding.train_embedding`: the data is validated first, a folder holding a run is
    resumed only with the same settings, and the saved config holds absolute paths (the data,
    `embedding_run`, `truth`); `strategy` as there. The data defaults to the embedding run's.

    Returns:
        a `vsa_tf.jobs.trainer.TrainingResult` (`.test` is None: captions are evaluated by
        `evaluate_scnlm_captions`).
    """
    return trainer.train(SCNLMTask(), config, run_dir, verbose=verbose, strategy=strategy)


def load_scnlm_run(run_dir):
    """Rebuilds an SC-NLM run: a `Run` with `extras` "tags", "structures" and its "embedding" run."""
    return run_folder.Run.load(run_dir, "scnlm")


def _generate(run, split, greedy, seed, dataset_path, images):
    """The images of `split` captioned: {"dataset", "data_config", "boxes", "features", "records",
    "content" (their joint-space vectors), "structures" (the sampled tag sequences), "captions"}."""
    data_config = run_folder.with_dataset(run.config.data, dataset_path, images=images or run.config.data.images)
    dataset, boxes, features = load_data(data_config)
    records = dataset.split(split)
    if not records:
        raise ValueError(f"{data_config.dataset}: the {split!r} split is empty")
    embedding = run.extras["embedding"]
    content = embed_images(embedding.model, records, data_config, boxes, features)
    structures = sample_structures(run.extras["structures"], len(records), seed=seed)
    words = np.asarray(run.model.generate(content, structures, greedy=greedy, seed=seed))
    captions = [" ".join(run.vocabulary.decode(row)) for row in words]
    return {"dataset": dataset, "data_config": data_config, "boxes": boxes, "features": features, "records": records,
            "content": content, "structures": structures, "captions": captions}


def generate_scnlm_captions(run_dir, split="test", greedy=True, seed=0, out=None, dataset_path=None, images=None):
    """One caption per image of `split`: {filename: caption}; written as JSON to `out` when given.

    Each image gets a POS structure sampled from the training sentences' tag sequences.
    """
    run = run_folder.as_run(run_dir, "scnlm")
    generated = _generate(run, split, greedy, seed, dataset_path, images)
    result = {record.filename: caption for record, caption in zip(generated["records"], generated["captions"])}
    if out:
        run_folder.write_json(out, result, sort_keys=True)
    return result


def evaluate_scnlm_captions(run_dir, split="test", greedy=True, seed=0, json_out=None, dataset_path=None, images=None, max_examples=20):
    """SC-NLM caption metrics (the keys of `vsa_tf.evaluation.captions.caption_scores`), beside a
    nearest-neighbour baseline in the joint space, so the report sits in one table with the
    multimodal RNN's `evaluate-captions` report.

    Returns dict with "split", "decoding", "num_images", "model", "nearest_neighbour",
    "verbatim_fraction" and "examples".
    """
    run = run_folder.as_run(run_dir, "scnlm")
    generated = _generate(run, split, greedy, seed, dataset_path, images)
    records, structures = generated["records"], generated["structures"]
    train_records = generated["dataset"].split("train")
    candidates = caption_metrics.non_empty(dict(enumerate(generated["captions"])))
    references = {index: [sentence.text for sentence in record.sentences] for index, record in enumerate(records)}
    train_content = embed_images(
        run.extras["embedding"].model, train_records, generated["data_config"], generated["boxes"], generated["features"]
    )
    train_captions = [[sentence.text for sentence in record.sentences] for record in train_records]
    neighbours = dict(enumerate(caption_metrics.nearest_neighbour_captions(generated["content"], train_content, train_captions)))
    report = {
        "split": split,
        "decoding": "greedy" if greedy else "sampled",
        "num_images": len(records),
        "model": caption_metrics.caption_scores(references, candidates),
        "nearest_neighbour": caption_metrics.caption_scores(references, neighbours),
        "verbatim_fraction": float(
            caption_metrics.verbatim_fraction(list(candidates.values()), [text for texts in train_captions for text in texts])
        ),
        "examples": [
            {"filename": record.filename, "caption": candidates[index], "structure": run.extras["tags"].decode(structures[index]),
             "references": references[index]}
            for index, record in enumerate(records[:max_examples])
        ],
    }
    if json_out:
        run_folder.write_json(json_out, report, sort_keys=True)
    return report
