"""The on-disk embedding store: hits across stores and sessions, checksums, damaged stores rebuilt, eviction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sam2core.lite_medsam.model import ImageEmbedding
from sam2core.lite_medsam.preprocess import FrameGeometry
from sam2core.predictor.embedding_store import (
    EmbeddingStore,
    frame_key,
    join_embedding,
    model_signature,
    split_embedding,
)
from tests.volume.fake_models import ThresholdImageModel


def _embedding(seed: int = 0) -> ImageEmbedding:
    g = torch.Generator().manual_seed(seed)
    return ImageEmbedding(torch.randn(1, 8, 4, 4, generator=g), FrameGeometry((30, 40), (24, 32), 32))


def test_dataclass_embedding_round_trips_as_float16():
    original = _embedding()
    tensor, meta = split_embedding(original)
    back = join_embedding(tensor.half(), json.loads(json.dumps(meta)))
    assert isinstance(back, ImageEmbedding) and back.geometry == original.geometry
    assert back.features.dtype == torch.float32
    torch.testing.assert_close(back.features, original.features, atol=1e-2, rtol=1e-3)


def test_a_second_store_on_the_same_folder_finds_what_the_first_wrote(tmp_path):
    first = EmbeddingStore(tmp_path)
    key = frame_key("model-a", np.ones((3, 5, 5), np.float32))
    first.put(key, _embedding(1), group="g", slot=3, num_frames=10)
    second = EmbeddingStore(tmp_path)
    found = second.get(key)
    assert found is not None and second.hits == 1
    torch.testing.assert_close(found.features, _embedding(1).features, atol=1e-2, rtol=1e-3)


def test_keys_differ_by_frame_and_by_model():
    frame = np.zeros((3, 4, 4), np.float32)
    other = frame.copy()
    other[0, 0, 0] = 1e-3
    assert frame_key("m", frame) != frame_key("m", other)
    assert frame_key("m", frame) != frame_key("n", frame)
    assert model_signature(ThresholdImageModel(0.5)) != model_signature(ThresholdImageModel(0.4))


def test_corrupt_chunk_is_detected_dropped_and_rewritten(tmp_path):
    store = EmbeddingStore(tmp_path)
    key = frame_key("m", np.ones((3, 4, 4), np.float32))
    store.put(key, _embedding(2), group="g", slot=0, num_frames=2)
    chunk = next(p for p in (tmp_path / "g" / "embeddings.zarr").rglob("*") if p.is_file() and "c" in p.parts)
    chunk.write_bytes(b"\x00garbage" * 10)
    reopened = EmbeddingStore(tmp_path)
    assert reopened.get(key) is None and reopened.rebuilt == 1
    assert key not in reopened
    reopened.put(key, _embedding(2), group="g", slot=0, num_frames=2)
    assert EmbeddingStore(tmp_path).get(key) is not None


def test_partial_slot_without_its_file_is_never_read(tmp_path):
    store = EmbeddingStore(tmp_path)
    key = frame_key("m", np.ones((3, 4, 4), np.float32))
    store.put(key, _embedding(3), group="g", slot=1, num_frames=2)
    (tmp_path / "g" / "slots" / "1.json").unlink()  # the process died between chunk and slot file
    assert EmbeddingStore(tmp_path).get(key) is None


def test_unreadable_group_description_drops_the_group(tmp_path):
    store = EmbeddingStore(tmp_path)
    key = frame_key("m", np.ones((3, 4, 4), np.float32))
    store.put(key, _embedding(4), group="g", slot=0, num_frames=1)
    (tmp_path / "g" / "group.json").write_text("{not json")
    reopened = EmbeddingStore(tmp_path)
    assert reopened.get(key) is None and not (tmp_path / "g").exists()


def test_size_limit_evicts_the_least_recently_used_group(tmp_path):
    one = _embedding(5)
    probe = EmbeddingStore(tmp_path / "probe")
    probe.put("k", one, group="g", slot=0, num_frames=1)
    store = EmbeddingStore(tmp_path / "store", max_bytes=int(probe.info().bytes * 2.5))
    keys = [frame_key("m", np.full((3, 2, 2), i, np.float32)) for i in range(3)]
    store.put(keys[0], one, group="old", slot=0, num_frames=1)
    store.put(keys[1], one, group="mid", slot=0, num_frames=1)
    assert store.get(keys[0]) is not None  # "old" used again: "mid" is now the least recently used
    store.put(keys[2], one, group="new", slot=0, num_frames=1)
    assert keys[1] not in store and keys[0] in store and keys[2] in store
    assert store.info().bytes <= store.max_bytes


def test_clear_removes_everything(tmp_path):
    store = EmbeddingStore(tmp_path)
    store.put(frame_key("m", np.ones((3, 2, 2), np.float32)), _embedding(), group="g", slot=0, num_frames=1)
    assert store.info().slices == 1 and store.clear() > 0
    assert store.info().slices == 0 and store.info().groups == 0


def test_non_sam2core_dataclass_is_refused():
    from dataclasses import dataclass

    @dataclass
    class Foreign:
        features: torch.Tensor

    with pytest.raises(TypeError, match="not a sam2core class"):
        split_embedding(Foreign(torch.zeros(2)))


def test_weights_hash_is_remembered_until_a_weight_changes_in_place():
    import torch

    from sam2core.predictor.embedding_store import weights_hash

    model = torch.nn.Linear(4, 3)
    first = weights_hash(model)
    assert weights_hash(model) == first
    with torch.no_grad():
        model.weight[0, 0] += 1.0  # in place: the version counter moves
    changed = weights_hash(model)
    assert changed != first
    model.weight = torch.nn.Parameter(torch.zeros(3, 4))  # replaced: another tensor
    assert weights_hash(model) not in (first, changed)


def test_forgotten_weights_hash_sees_a_write_through_data():
    import torch

    from sam2core.predictor.embedding_store import forget_weights_hash, weights_hash

    model = torch.nn.Linear(4, 3)
    first = weights_hash(model)
    model.weight.data[0, 0] += 1.0  # bypasses the version counter
    forget_weights_hash(model)
    assert weights_hash(model) != first


def test_a_model_reconfigured_after_its_predictor_was_built_stores_under_its_new_engine(tmp_path):
    """Embeddings of different encoders never share a key: the signature follows the model's engine."""
    from sam2core.predictor.carrying import CarryingPredictor
    from sam2core.predictor.embedding_store import EmbeddingStore

    model = ThresholdImageModel()
    model.engine, model.engine_precision = "torch", "fp32"
    predictor = CarryingPredictor(model, embedding_store=EmbeddingStore(tmp_path))
    frames = torch.rand(2, 3, 32, 32)
    state = predictor.init_state(frames)
    assert predictor.encode_frame(state, 0)
    model.engine = "openvino"  # e.g. configure_engine(model, "openvino") after the session was made
    state = predictor.init_state(frames)
    assert predictor.encode_frame(state, 0), "the torch embedding was reused for another engine"
    state = predictor.init_state(frames)
    assert not predictor.encode_frame(state, 0), "the same engine again: read from the store"
