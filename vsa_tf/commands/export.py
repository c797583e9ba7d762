"""`vsa-tf export`: trained runs -> TF Serving SavedModels under `saved_models/<name>/<version>/`."""


def register(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export runs as TF Serving SavedModels (captioner, aligner) with models.config and batching.config",
        description="Writes saved_models/aligner/<version>/ from an alignment run and saved_models/captioner/<version>/ "
        "from a caption run (keras.export.ExportArchive, preprocessing and beam search in the graph), audits their ops "
        "and (re)writes models.config and batching.config. An existing version is kept unless --overwrite.",
    )
    parser.add_argument("--run", required=True, help="an alignment run (exported as 'aligner') or a caption run ('captioner')")
    parser.add_argument("--caption-run", default=None, help="a caption run exported as 'captioner' alongside --run")
    parser.add_argument(
        "--proposals-run", "--proposals", dest="proposals_run", default=None,
        help="a proposals run (vsa-tf train-proposals): adds signatures that find regions from the image bytes alone "
        "(captioner: caption_proposals; aligner: encode_image_proposals, score_proposals, align_proposals)",
    )
    parser.add_argument("--out", default="saved_models", help="model base folder (default: saved_models)")
    parser.add_argument("--version", type=int, default=None, help="version number (default: next free)")
    parser.add_argument("--beam", type=int, default=7, help="beam size of the captioner's in-graph beam search (default: 7)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the export summary here")
    parser.set_defaults(handler=run_export)


def hide_gpus():
    """Traces on the CPU: with a GPU visible, a Keras LSTM/GRU would bake in GPU-only cuDNN kernels."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass  # devices already initialised in this process; the op audit still rejects cuDNN ops


def run_export(args):
    hide_gpus()
    from vsa_tf.jobs import export, run_folder

    kind = run_folder.run_kind(args.run)
    if kind == "alignment":
        alignment_run, caption_run = args.run, args.caption_run
    elif kind == "caption":
        if args.caption_run:
            raise ValueError(f"--run {args.run} is a caption run; give the alignment run as --run with --caption-run")
        alignment_run, caption_run = None, args.run
    else:
        raise ValueError(f"--run {args.run} is a {kind!r} run; export handles 'alignment' and 'caption' runs")
    result = export.export_models(
        alignment_run, caption_run, out_dir=args.out, version=args.version, beam=args.beam, overwrite=args.overwrite,
        proposals_run=args.proposals_run,
    )
    for name in ("aligner", "captioner"):
        if name in result:
            print(f"{name}: {result[name]['path']}")
            for signature, sides in result[name]["signatures"].items():
                inputs = ", ".join(f"{key}: {value}" for key, value in sides["inputs"].items())
                outputs = ", ".join(f"{key}: {value}" for key, value in sides["outputs"].items())
                print(f"  {signature}({inputs}) -> {outputs}")
    print(f"models config: {result['models_config']}\nbatching config: {result['batching_config']}")
    if args.json_path:
        export.write_export_summary(result, args.json_path)
    return 0
