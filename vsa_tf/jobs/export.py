"""Export trained runs as TF Serving SavedModels: `saved_models/{captioner,aligner}/<version>/`.

Each model is traced (`keras.export.ExportArchive`), audited for stock-TF-only ops, given its
vocabulary and configs in `assets.extra/`, and renamed into place only when complete; then
`models.config` and `batching.config` are (re)written in the output folder.

With a proposals run (`proposals_run=`, `vsa-tf export --proposals-run`) both models also find their
regions from the image bytes alone: the captioner's `caption_proposals` and the aligner's
`encode_image_proposals`, `score_proposals` and `align_proposals` signatures
(`vsa_tf.export.proposals`). The feature map is computed once per image where the proposal run's
backbone is the model's region backbone; where it is not, both backbones run and a one-line warning
says so.
"""

import json
import os
import sys
import time

from vsa_tf import __version__
from vsa_tf.config import atomic_write_text
from vsa_tf.export import audit
from vsa_tf.export import layout
from vsa_tf.export.aligner import AlignerSignatures, export_aligner
from vsa_tf.export.captioner import CaptionerSignatures, export_captioner
from vsa_tf.jobs import run_folder

EXPORT_INFO_FILE = "export.json"


def aligner_signatures(run, proposal_model=None):
    """`AlignerSignatures` of a loaded alignment run (with ``proposal_model``: the `*_proposals` signatures)."""
    data = run.config.data
    return AlignerSignatures(
        run.model,
        run.vocabulary,
        image_size=data.image_size,
        max_boxes=data.max_boxes,
        max_words=data.max_words,
        feature_mode=run.model.feature_mode,
        feature_dim=getattr(run.model, "feature_dim", None),
        proposal_model=proposal_model,
    )


def captioner_signatures(run, beam=None, proposal_model=None):
    """`CaptionerSignatures` of a loaded caption run (``beam`` overrides the run's beam size; with
    ``proposal_model``: the `caption_proposals` signature)."""
    config = run.config
    return CaptionerSignatures(
        run.model,
        run.vocabulary,
        image_size=config.data.image_size,
        beam_size=int(beam) if beam is not None else getattr(config, "beam_size", 7),
        max_length=getattr(config, "max_length", 16),
        length_normalization=getattr(config, "length_normalization", 0.0),
        feature_mode=run.model.feature_mode,
        feature_dim=getattr(run.model, "feature_dim", None),
        proposal_model=proposal_model,
    )


def check_proposal_image_size(proposals_run, run):
    """Raises ValueError unless the proposals run resizes images as ``run`` does (both `Run`s, loaded or opened)."""
    proposal_size = tuple(int(size) for size in proposals_run.config.data.image_size)
    model_size = tuple(int(size) for size in run.config.data.image_size)
    if proposal_size != model_size:
        raise ValueError(
            f"proposals run {proposals_run.folder} has data.image_size {list(proposal_size)} but {run.kind} run {run.folder} "
            f"has {list(model_size)}: the proposals must be laid on the image the regions are pooled from"
        )


def _proposal_info(signatures, proposals_run, name):
    """export.json fields of a model exported with proposals; prints the two-backbone warning."""
    stage = signatures.proposals
    if not stage.shares_backbone:
        print(
            f"warning: {name}: the proposals run's backbone is not the {name}'s ({stage.backbone_difference}); "
            "the exported graph runs both backbones per image",
            file=sys.stderr,
        )
    return {
        "proposals_run": os.path.abspath(proposals_run.folder),
        "max_proposals": stage.max_proposals,
        "shared_backbone": stage.shares_backbone,
    }


def _assets(run, info):
    """assets.extra contents: the run's vocabulary and config (with its DataConfig), and what was exported."""
    return {
        "vocabulary.txt": "\n".join(run.vocabulary.tokens) + "\n",
        "config.json": run.config.to_json() + "\n",
        EXPORT_INFO_FILE: json.dumps(info, indent=2, sort_keys=True) + "\n",
    }


def _writer(name, version, export_function, signatures, run, run_dir, extra_info):
    """A `layout.write_versions` write function for one model, and the info dict it fills in."""
    info = {
        "model": name,
        "version": version,
        "source_run": os.path.abspath(run_dir) if run_dir else None,
        "feature_mode": signatures.feature_mode,
        "vsa_tf_version": __version__,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra_info,
    }

    def write(path):
        export_function(signatures, path)
        audit.check_saved_model(path)
        info["signatures"] = audit.signature_summary(path)
        layout.write_assets_extra(path, texts=_assets(run, info))

    return write, info


def export_models(
    alignment_run=None, caption_run=None, out_dir="saved_models", version=None, beam=7, overwrite=False, proposals_run=None
):
    """Exports the aligner and/or the captioner as `out_dir/<name>/<version>/` SavedModels.

    All or nothing: every run is loaded and checked before anything is written, and the models are
    renamed into place only once all of them are written (`layout.write_versions`), so a failed
    export leaves ``out_dir`` as it was.

    Args:
        alignment_run: an alignment run folder (or loaded run), exported as "aligner"; optional.
        caption_run: a caption run folder (or loaded run), exported as "captioner"; optional.
        out_dir: the TF Serving model base folder.
        version: positive integer; None = one more than the highest existing version of either model.
        beam: beam size of the captioner's in-graph beam search (None = the run's).
        overwrite: replace an existing version (otherwise a ValueError, before anything is written).
        proposals_run: optional proposals run folder (or loaded run): adds the proposal signatures to
            both models. Its `data.image_size` must be each model's (a ValueError naming both otherwise).

    Returns:
        {name: {"path", "version", "signatures"}} plus "models_config" and "batching_config" paths.
    """
    if alignment_run is None and caption_run is None:
        raise ValueError("export_models needs an alignment run, a caption run, or both")
    names = ([layout.ALIGNER_NAME] if alignment_run is not None else []) + ([layout.CAPTIONER_NAME] if caption_run is not None else [])
    version = layout.next_version(out_dir, names) if version is None else layout.check_version(version)
    for name in names:  # fail before exporting anything
        layout.check_can_write(out_dir, name, version, overwrite)
    proposal_model = None
    if proposals_run is not None:  # image sizes are checked on the configs, before any model is loaded
        opened = proposals_run if isinstance(proposals_run, run_folder.Run) else run_folder.Run.open(proposals_run, "proposals")
        for run, kind in ((alignment_run, "alignment"), (caption_run, "caption")):
            if run is not None:
                check_proposal_image_size(opened, run if isinstance(run, run_folder.Run) else run_folder.Run.open(run, kind))
        proposals_run = run_folder.as_run(proposals_run, "proposals")
        proposal_model = proposals_run.model

    writers = {}  # name -> (write function, info); every run is loaded before the first write
    if alignment_run is not None:
        run = run_folder.as_run(alignment_run, "alignment")
        signatures = aligner_signatures(run, proposal_model)
        extra = {"max_boxes": signatures.max_boxes, "max_words": signatures.max_words, "image_size": list(signatures.image_size)}
        if proposal_model is not None:
            extra.update(_proposal_info(signatures, proposals_run, layout.ALIGNER_NAME))
        writers[layout.ALIGNER_NAME] = _writer(layout.ALIGNER_NAME, version, export_aligner, signatures, run, run.folder, extra)
    if caption_run is not None:
        run = run_folder.as_run(caption_run, "caption")
        signatures = captioner_signatures(run, beam, proposal_model)
        extra = {"beam": signatures.beam_size, "max_length": signatures.max_length, "image_size": list(signatures.image_size)}
        if proposal_model is not None:
            extra.update(_proposal_info(signatures, proposals_run, layout.CAPTIONER_NAME))
        writers[layout.CAPTIONER_NAME] = _writer(layout.CAPTIONER_NAME, version, export_captioner, signatures, run, run.folder, extra)

    paths = layout.write_versions(out_dir, version, {name: write for name, (write, _) in writers.items()}, overwrite=overwrite)
    result = {
        name: {"path": paths[name], "version": version, "signatures": info["signatures"]} for name, (_, info) in writers.items()
    }
    served = [name for name in (layout.CAPTIONER_NAME, layout.ALIGNER_NAME) if layout.existing_versions(out_dir, name)]
    models_config, batching_config = layout.write_server_configs(out_dir, served)
    result["models_config"] = models_config
    result["batching_config"] = batching_config
    return result


def write_export_summary(result, path):
    """Writes `export_models`' result as JSON (atomically)."""
    atomic_write_text(path, json.dumps(result, indent=2, sort_keys=True) + "\n")
