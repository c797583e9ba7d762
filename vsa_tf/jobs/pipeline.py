"""The main job over any dataset, stage by stage, resumable: `vsa-tf pipeline` and `vsa-tf demo`.

    [world →] validate → regions → [features →] alignment → retrieval → snippets → captioners →
    captions → [proposals →] [embedding →] export → report

Everything is written under one `out` folder: `pipeline_config.json` (the `PipelineConfig`; a rerun with
other settings is refused, except `RESUMABLE_FIELDS`), `runs/` (each training stage's run folders),
`figures/`, `summary.json` and `stages/NAME.json`, the marker a stage writes atomically once its outputs
are written (its summary and its seconds). A rerun skips the stages that have a marker; a stage
interrupted before its marker runs again, and its training jobs resume their run folders
(`vsa_tf.jobs.trainer`). `stages=[...]` runs only those stages, done or not (e.g. `["report"]`).
The work of each stage lives in `vsa_tf.jobs.demo`; this module orders it and keeps the markers.
"""

import dataclasses
import json
import os
import time
import typing

from vsa_tf.config import PipelineConfig, ProposalConfig, atomic_write_text, load_config, save_config
from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import readers, validate
from vsa_tf.jobs import demo as stages_lib
from vsa_tf.jobs import export as export_job
from vsa_tf.jobs import features as features_job
from vsa_tf.jobs import proposals as proposal_job
from vsa_tf.jobs import run_folder
from vsa_tf.jobs.demo_report import write_demo_report
from vsa_tf.jobs.features import format_duration

CONFIG_FILE = "pipeline_config.json"
# Fields a rerun into the same folder may change: where the export and the report go, and the epoch
# counts (a stage not yet finished resumes its run folders with the new count; a finished one keeps its own).
RESUMABLE_FIELDS = ("saved_models", "report_dir", "alignment_epochs", "caption_epochs", "embedding_epochs", "proposal_epochs")
# Rough share of each stage in the quick demo's time: the ETA of the stages not yet timed.
STAGE_WEIGHTS = {
    "world": 1, "validate": 1, "regions": 1, "features": 10, "alignment": 15, "retrieval": 2, "snippets": 5,
    "captioners": 20, "captions": 15, "proposals": 15, "embedding": 10, "export": 10, "report": 2,
}


@dataclasses.dataclass
class Stage:
    """One stage: `run(context) -> summary dict` (JSON), its marker `out/stages/NAME.json` once done."""

    name: str
    run: typing.Callable
    description: str


@dataclasses.dataclass
class PipelineContext:
    """What the stages share: the config, the folders, the data they read and the evaluation split."""

    config: PipelineConfig
    folders: stages_lib.PipelineFolders

    @property
    def data(self):
        return self.folders.data_config(self.config)

    @property
    def truth_path(self):
        return self.folders.truth_path(self.config)

    def dataset(self):
        return readers.read_data_config(self.data)

    def truth(self):
        if not self.truth_path:
            return None
        with open(self.truth_path, encoding="utf-8") as stream:
            return json.load(stream)

    def split(self):
        """The evaluation split: test, or val for a dataset without a test split."""
        return "test" if self.dataset().split("test") else "val"

    def brnn(self):
        return run_folder.Run.load(self.folders.brnn)


def _world(context):
    config = context.config
    return {"world": stages_lib.prepare_world(config.seed, config.world, context.folders.world)}


def _validate(context):
    data = context.folders.source_data(context.config)
    dataset = readers.read_data_config(data)
    boxes = boxes_lib.read_boxes(data.boxes) if data.boxes else None
    summary = validate.validate_dataset(dataset, data.images, boxes)
    if context.config.world is None and context.config.truth and not os.path.isfile(context.config.truth):
        raise ValueError(f"truth file not found: {context.config.truth}")
    split = "test" if dataset.split("test") else "val"
    print(json.dumps(summary, default=str)[:600], flush=True)
    if split == "val":
        print("    no test split: the evaluations use val (which also selected the models)", flush=True)
    return {"validation": summary, "evaluation_split": split, "dataset": {"name": dataset.name, "path": data.dataset}}


def _regions(context):
    """The regions of every image: the boxes file, a proposals run's boxes, or proposals trained here."""
    config, folders = context.config, context.folders
    data = folders.source_data(config)
    if config.train_proposals:
        proposal_config = ProposalConfig(
            data=data, anchor_sizes=config.proposal_anchor_sizes, aspect_ratios=config.proposal_aspect_ratios,
            epochs=config.proposal_epochs, patience=0, seed=config.seed,
        )
        proposal_job.train_proposals(proposal_config, run_dir=folders.region_proposals, verbose=2)
        proposal_job.propose_boxes(folders.region_proposals, data.replace(boxes=None), out=folders.region_boxes)
        return {"regions": {"source": "proposals trained here on " + str(data.boxes), "run": folders.region_proposals,
                            "boxes": folders.region_boxes}}
    if data.proposals:
        proposal_job.propose_boxes(data.proposals, data.replace(boxes=None, proposals=None), out=folders.region_boxes)
        return {"regions": {"source": "proposals run " + data.proposals, "boxes": folders.region_boxes}}
    return {"regions": {"source": "boxes file" if data.boxes else "whole images only", "boxes": data.boxes}}


def _features(context):
    config, data = context.config, context.data
    return {"features": features_job.cache_region_features(
        data.dataset, data.images, data.boxes, config.backbone_weights, data.features, image_size=data.image_size,
        max_boxes=data.max_boxes, pool_size=config.pool_size,
    )}


def _alignment(context):
    brnn = stages_lib.train_aligners(context.config, context.data, context.folders)
    return {"alignment_runs": {"brnn": brnn.folder, "bag_of_words": context.folders.bag_of_words if context.config.bag_of_words else None}}


def _retrieval(context):
    runs = {"BRNN (ours)": context.brnn()}
    if context.config.bag_of_words:
        runs["Bag of words"] = run_folder.Run.load(context.folders.bag_of_words)
    retrieval, binding = stages_lib.retrieval_and_binding(runs, context.truth(), context.split())
    stages_lib.print_retrieval(retrieval, binding, context.split())
    return {"retrieval": retrieval, "binding": binding}


def _snippets(context):
    accuracy, figures = stages_lib.snippet_alignment(
        context.config, context.brnn(), context.dataset(), context.truth(), context.truth_path, context.folders, context.split()
    )
    return {"alignment_accuracy": accuracy, "alignment_figures": figures}


def _captioners(context):
    stages_lib.train_captioners(context.config, context.data, context.folders, context.split())
    return {"caption_runs": {"full_frame": context.folders.full_frame, "regions": context.folders.regions}}


def _captions(context):
    config, dataset, truth, split = context.config, context.dataset(), context.truth(), context.split()
    # The captioners' own mode (cached-mode pipelines before cc48209 trained them on pixels).
    cached = run_folder.read_config_values(context.folders.full_frame).get("image", {}).get("mode") == "cached"
    data = context.data if cached else context.data.replace(features=None)
    # Cached mode: every truth object of the split gets its own cached feature, for Table 3 and the figures.
    region_data = stages_lib.truth_region_data(config, data, context.truth_path, context.folders, split) if cached and truth else None
    result = stages_lib.caption_evaluation(
        config, data, dataset, truth, context.truth_path, context.folders, split, oracle=config.world is not None, region_data=region_data
    )
    stages_lib.print_captions(result["captions"], result.get("region_captions"), result.get("caption_oracle"))
    result["caption_figures"] = stages_lib.caption_figures(config, context.folders, dataset, data, truth, split, region_data)
    return result


def _proposals(context):
    snippets_marker = read_marker(context.folders, "snippets") or {}
    accuracy = snippets_marker.get("summary", {}).get("alignment_accuracy", {})
    result = stages_lib.proposal_demo(
        context.config, context.data, context.dataset(), context.truth(), context.truth_path, context.folders, accuracy
    )
    stages_lib.print_proposals(result)
    return {"proposals": result}


def _embedding(context):
    return {"embedding": stages_lib.embedding_demo(
        context.config, context.data, context.folders, context.truth_path, context.dataset(), context.split()
    )}


def _export(context):
    config = context.config
    out_dir = config.saved_models or os.path.join(context.folders.out_dir, "saved_models")
    exported = export_job.export_models(alignment_run=context.folders.brnn, caption_run=context.folders.full_frame, out_dir=out_dir, beam=config.beam_size)
    print(json.dumps({name: value.get("path") if isinstance(value, dict) else value for name, value in exported.items()}), flush=True)
    return {"export": dict(exported)}


def _report(context):
    """The summary of every stage's marker (`summary.json`) and the HTML report."""
    folders, config = context.folders, context.config
    summary = {"config": config.to_dict(), "stage_seconds": {}}
    for stage in pipeline_stages(config):
        marker = read_marker(folders, stage.name)
        if stage.name != "report" and marker is not None:
            summary.update(marker["summary"])
            summary["stage_seconds"][stage.name] = marker["seconds"]
    summary["total_seconds"] = round(sum(summary["stage_seconds"].values()), 1)
    summary["curves"] = stages_lib.training_curves(folders)
    summary["report"] = write_demo_report(summary, config.report_dir or os.path.join(folders.out_dir, "report"))
    atomic_write_text(os.path.join(folders.out_dir, "summary.json"), json.dumps(summary, indent=2, default=str) + "\n")
    return {"report": summary["report"]}


ALL_STAGES = (
    Stage("world", _world, "generate the synthetic world"),
    Stage("validate", _validate, "validate the dataset"),
    Stage("regions", _regions, "regions: the boxes file, a proposals run's boxes, or proposals trained on the boxes"),
    Stage("features", _features, "cache region features of the pretrained backbone (cached mode)"),
    Stage("alignment", _alignment, "train the alignment model (BRNN) and the bag-of-words ablation"),
    Stage("retrieval", _retrieval, "evaluate retrieval (Table 1) and attribute binding on twin images"),
    Stage("snippets", _snippets, "MRF snippet alignment for several β (eqs. 10-12)"),
    Stage("captioners", _captioners, "train the full-frame and the region captioners (multimodal RNN)"),
    Stage("captions", _captions, "evaluate captions (Tables 2 and 3)"),
    Stage("proposals", _proposals, "learned region proposals in place of the boxes file (recall, alignment, region captions)"),
    Stage("embedding", _embedding, "joint embedding (Kiros et al. 2014) and multimodal arithmetic"),
    Stage("export", _export, "export SavedModels for TF Serving"),
    Stage("report", _report, "training curves, summary.json and the HTML report"),
)
STAGE_NAMES = tuple(stage.name for stage in ALL_STAGES)


def pipeline_stages(config):
    """The stages `config` runs, in order (those it has no use for left out)."""
    skipped = set()
    if config.world is None:
        skipped.add("world")
    if config.resolved_feature_mode != "cached":
        skipped.add("features")
    if not config.compare_proposals:
        skipped.add("proposals")
    if not config.run_embedding:
        skipped.add("embedding")
    return [stage for stage in ALL_STAGES if stage.name not in skipped]


def marker_path(folders, name):
    return os.path.join(folders.stages, f"{name}.json")


def read_marker(folders, name):
    """A stage's marker ({"name", "seconds", "finished", "summary"}), or None when it has not finished."""
    path = marker_path(folders, name)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def check_same_config(config, out_dir):
    """Saves `config` in a new `out_dir`, or refuses one whose saved config differs (but for RESUMABLE_FIELDS)."""
    path = os.path.join(out_dir, CONFIG_FILE)
    if os.path.exists(path):
        # The feature mode compares as resolved (None with backbone weights is "cached").
        saved_config = load_config(PipelineConfig, path)
        saved = dict(saved_config.to_dict(), feature_mode=saved_config.resolved_feature_mode)
        wanted = dict(config.to_dict(), feature_mode=config.resolved_feature_mode)
        differences = sorted(key for key in wanted if key not in RESUMABLE_FIELDS and saved.get(key) != wanted[key])
        if differences:
            shown = "; ".join(f"{key}: {saved.get(key)!r} there, {wanted[key]!r} now" for key in differences)
            raise ValueError(f"{out_dir} holds a pipeline run with other settings ({shown}); use another --out, or the same settings")
    os.makedirs(out_dir, exist_ok=True)
    save_config(config, path)


def _check_dataset_given(config):
    if config.world is None and (not config.data.dataset or not config.data.images):
        raise ValueError(
            f"the pipeline needs a dataset and its images (received dataset {config.data.dataset!r}, "
            f"images {config.data.images!r}), or a synthetic world"
        )
    # Here, not in `PipelineConfig.__post_init__`: the command line's --feature-mode choices are the values a
    # default config accepts on their own.
    if config.resolved_feature_mode == "cached" and not config.backbone_weights:
        raise ValueError("the pipeline's feature_mode 'cached' needs backbone_weights (the pretrained backbone's weights file)")


def _eta(remaining, recorded, seconds_run, weights_run):
    """Seconds left for the `remaining` stages: a stage's recorded seconds where an earlier run timed it,
    else this run's pace so far (seconds per STAGE_WEIGHTS unit) times its weight."""
    pace = seconds_run / max(weights_run, 1)
    return sum(recorded.get(stage.name) or pace * STAGE_WEIGHTS.get(stage.name, 5) for stage in remaining)


def run_pipeline(config, out_dir, stages=None):
    """Runs the stages of `config` into `out_dir`, skipping those already done; returns the summary dict.

    Args:
        config: a `PipelineConfig`.
        out_dir: the pipeline's folder (created; a folder of a run with other settings is refused).
        stages: optional stage names to run (done or not, in pipeline order); None = every stage not yet done.

    Returns:
        the summary (`out_dir/summary.json`) when the report stage ran or was done, else {}.
    """
    _check_dataset_given(config)
    all_stages = pipeline_stages(config)
    names = [stage.name for stage in all_stages]
    unknown = sorted(set(stages or ()) - set(names))
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown} for this pipeline; its stages are {names}")
    folders = stages_lib.PipelineFolders(out_dir)
    check_same_config(config, folders.out_dir)
    for folder in (folders.runs, folders.figures, folders.stages):
        os.makedirs(folder, exist_ok=True)
    context = PipelineContext(config, folders)
    markers = {name: read_marker(folders, name) for name in names}
    recorded = {name: marker["seconds"] for name, marker in markers.items() if marker}
    selected = [stage for stage in all_stages if (stage.name in stages if stages is not None else not markers[stage.name])]
    started, weights_run = time.time(), 0
    for index, stage in enumerate(all_stages):
        prefix = f"[stage {index + 1}/{len(all_stages)}] {stage.name}"
        if stage not in selected:
            print(f"{prefix}: {'done before' if markers[stage.name] else 'not selected'}, skipped", flush=True)
            continue
        print(f"\n{prefix}: {stage.description} ...", flush=True)
        stage_started = time.time()
        summary = stage.run(context)
        seconds = round(time.time() - stage_started, 1)
        marker = {"name": stage.name, "seconds": seconds, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "summary": summary}
        atomic_write_text(marker_path(folders, stage.name), json.dumps(marker, indent=1, default=str) + "\n")
        weights_run += STAGE_WEIGHTS.get(stage.name, 5)
        remaining = selected[selected.index(stage) + 1:]
        eta = _eta(remaining, recorded, time.time() - started, weights_run)
        print(f"{prefix} done in {format_duration(seconds)}; elapsed {format_duration(time.time() - started)}, "
              f"ETA {format_duration(eta)}", flush=True)
    summary_path = os.path.join(folders.out_dir, "summary.json")
    if not os.path.exists(summary_path):
        return {}
    with open(summary_path, encoding="utf-8") as stream:
        return json.load(stream)


def run_demo(config):
    """The demo (`make demo`): the pipeline of `config.pipeline_config()` into `config.out_dir`.

    Args:
        config: a `DemoConfig`.
    """
    summary = run_pipeline(config.pipeline_config(), config.out_dir)
    print(f"\nDemo finished in {summary.get('total_seconds', 0):.0f} s. Report: {summary.get('report')}", flush=True)
    return summary
