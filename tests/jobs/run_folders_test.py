"""Run folders written by the training jobs: absolute paths, and re-runs with other settings refused."""

import pytest

from vsa_tf.config import AlignmentConfig, DataConfig, EmbeddingConfig, ImageEncoderConfig, save_config
from vsa_tf.data import synthetic
from vsa_tf.jobs import alignment, embedding
from tests.jobs.run_folder_files import file_tree


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("run_folders")
    synthetic.generate_world(str(root / "world"), num_images=None, split_counts=(8, 2, 3), seed=0, min_side=48, max_side=56,
                             max_objects=2, sentences_per_image=2)
    return root


def test_alignment_run_trained_with_relative_paths_works_from_elsewhere_and_refuses_other_settings(world, monkeypatch):
    monkeypatch.chdir(world)
    data = DataConfig(dataset="world/dataset.json", images="world/images", boxes="world/boxes.json", image_size=(32, 32),
                      max_boxes=2, max_words=8, min_word_count=1)
    config = AlignmentConfig(region_dim=8, embedding_dim=6, hidden_dim=8, image=ImageEncoderConfig(filters=(4, 8)), batch_size=4, epochs=1,
                             dropout=0.0)
    summary = alignment.train_alignment(config, data, "runs/x", verbose=0)
    run_dir = str(world / "runs" / "x")
    saved = alignment.load_alignment_run(run_dir).config.data
    assert (saved.dataset, saved.images, saved.boxes) == tuple(str(world / "world" / name) for name in ("dataset.json", "images", "boxes.json"))
    assert saved.features is None

    (world / "elsewhere").mkdir()
    monkeypatch.chdir(world / "elsewhere")
    assert alignment.evaluate_retrieval(run_dir, split="test") == summary.test

    before = file_tree(run_dir)
    with pytest.raises(ValueError, match=r"runs/x already holds a 'alignment' run .*region_dim: 8 -> 48.*--out"):
        alignment.train_alignment(config.replace(region_dim=48), saved, run_dir, verbose=0)
    assert file_tree(run_dir) == before
    assert alignment.evaluate_retrieval(run_dir, split="test") == summary.test


def test_embedding_job_refuses_a_folder_holding_a_run_with_other_settings(world, tmp_path):
    data = DataConfig(dataset=str(world / "world" / "dataset.json"), images=str(world / "world" / "images"), image_size=(32, 32),
                      min_word_count=1)
    run_dir = tmp_path / "embedding"
    run_dir.mkdir()
    save_config(EmbeddingConfig(data=data, embedding_dim=8), str(run_dir / "config.json"))
    before = file_tree(run_dir)
    with pytest.raises(ValueError, match=r"embedding_dim: 8 -> 16"):
        embedding.train_embedding(EmbeddingConfig(data=data, embedding_dim=16), str(run_dir), verbose=0)
    assert file_tree(run_dir) == before


def test_embedding_job_validates_the_data_before_writing(tmp_path):
    (tmp_path / "images").mkdir()
    dataset = tmp_path / "dataset.json"
    dataset.write_text('{"images": [{"filename": "absent.jpg", "split": "train", "sentences": [{"raw": "a cat"}]}]}')
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match="absent.jpg: image file not found"):
        embedding.train_embedding(EmbeddingConfig(data=DataConfig(dataset=str(dataset), images=str(tmp_path / "images"))), str(run_dir))
    assert not run_dir.exists()
