"""Window per object on CT, the user's extent, prompts joined between slices, a leak stopped."""

from __future__ import annotations

import numpy as np
import pytest

from sam2core.predictor.carry_rule import AppearanceModel, CarryConfig, carry_mask
from tests.volume.fake_models import FakeScan, ThresholdImageModel, ellipsoid
from volume import PromptOutsideVolumeError, Session, dice
from volume.windowing import CT_PRESETS, choose_object_window

SHAPE = (30, 40, 50)


def ct_volume() -> np.ndarray:
    """A CT-like volume: soft tissue (40 HU) body with an air-filled lung, a bone and a bright lesion."""
    vol = np.full(SHAPE, -1000, dtype=np.int16)
    vol[:, 2:38, 2:48] = 40
    vol[ellipsoid(SHAPE, (15, 12, 12), (10, 7, 8)) > 0] = -850  # lung
    vol[ellipsoid(SHAPE, (15, 30, 25), (10, 4, 4)) > 0] = 900  # bone
    vol[ellipsoid(SHAPE, (15, 20, 38), (6, 5, 5)) > 0] = 120  # enhancing lesion
    return vol


def test_choose_object_window_by_what_the_prompt_holds():
    assert choose_object_window(np.full(50, -850.0)).name == "lung"
    assert choose_object_window(np.full(50, 900.0)).name == "bone"
    assert choose_object_window(np.full(50, 40.0)).name == "soft_tissue"
    assert choose_object_window(np.full(50, 130.0)).name == "soft_tissue"


def test_session_gives_air_bone_and_soft_objects_their_own_windows():
    session = Session(FakeScan(ct_volume()), ThresholdImageModel(threshold=0.05))
    session.add_box(1, 15, (6, 5, 18, 19))  # lung
    session.add_box(2, 15, (26, 21, 34, 29))  # bone
    session.add_box(3, 15, (16, 34, 24, 42))  # lesion
    windows = session.object_windows
    assert (windows[1].name, windows[2].name, windows[3].name) == ("lung", "bone", "soft_tissue")
    lung_level = CT_PRESETS["lung"][0]
    assert windows[1].low < lung_level < windows[1].high
    assert set(session.slices_encoded_per_window) == {"lung", "bone", "soft_tissue"}


def test_objects_with_the_same_window_share_encodes():
    vol = ct_volume()
    session = Session(FakeScan(vol), ThresholdImageModel(threshold=0.05))
    session.add_box(1, 15, (16, 34, 24, 42))
    session.add_box(2, 15, (10, 20, 14, 26))  # soft tissue too
    session.propagate()
    assert len(session.slices_encoded_per_window) == 1
    assert session.slices_encoded <= SHAPE[0]


def test_explicit_window_wins_over_the_choice():
    session = Session(FakeScan(ct_volume()), ThresholdImageModel(threshold=0.05), window="soft_tissue")
    session.add_box(1, 15, (6, 5, 18, 19))
    assert session.object_windows[1].name == "soft_tissue"


def make_session(**options) -> Session:
    return Session(FakeScan(ellipsoid(SHAPE, (15, 20, 24), (12, 10, 12))), ThresholdImageModel(), window="0,1000",
                   **options)


@pytest.mark.parametrize("first, last", [(10, 22), (5, 14), (12, 12)])
def test_extent_is_respected_in_both_directions(first, last):
    session = make_session()
    session.add_box(1, 12, (12, 14, 28, 34))
    session.set_extent(1, first, last)
    labels = session.propagate()
    zs = np.flatnonzero((labels == 1).any(axis=(1, 2)))
    assert zs[0] == first and zs[-1] == last


def test_extent_set_after_propagation_clears_outside_and_widening_carries_again():
    session = make_session()
    session.add_box(1, 12, (12, 14, 28, 34))
    session.propagate()
    session.set_extent(1, 10, 14)
    zs = np.flatnonzero((session.labels == 1).any(axis=(1, 2)))
    assert (zs[0], zs[-1]) == (10, 14)
    session.set_extent(1, 6, 20)
    zs = np.flatnonzero((session.propagate() == 1).any(axis=(1, 2)))
    assert (zs[0], zs[-1]) == (6, 20)


def test_prompt_outside_the_extent_is_refused():
    session = make_session()
    session.add_box(1, 12, (12, 14, 28, 34))
    session.set_extent(1, 10, 14)
    with pytest.raises(PromptOutsideVolumeError):
        session.add_box(1, 20, (12, 14, 28, 34))
    with pytest.raises(PromptOutsideVolumeError):
        session.set_extent(1, 13, 20)


class _FadingModel(ThresholdImageModel):
    """Like the threshold model, but its predicted IoU is low on slices listed in `doubtful`."""

    def __init__(self, doubtful):
        super().__init__()
        self.doubtful = set(doubtful)
        self.slice_of = {}

    def encode_image(self, frame):
        embedding = super().encode_image(frame)
        self.slice_of[id(embedding)] = len(self.encoded) - 1
        return embedding

    def decode(self, embedding, **prompts):
        logits, iou = super().decode(embedding, **prompts)
        if float((embedding > 0.75).sum()) in self.doubtful:  # the object's area on this slice
            iou = iou * 0 + 0.1
        return logits, iou


def test_two_prompted_slices_are_joined_without_gap_or_double_work():
    vol = ellipsoid(SHAPE, (15, 20, 24), (12, 10, 12))
    areas = {float((vol[z] > 0).sum()) for z in range(10, 14)}  # frame sums in window 0..1000
    model = _FadingModel(doubtful=areas)  # predicted IoU 0.1 on slices 10..13 ...
    config = CarryConfig(min_iou=0.5)  # ... so this stop rule ends carrying there (outside a join)
    session = Session(FakeScan(vol), model, window="0,1000", predictor_options={"config": config})
    session.add_box(1, 8, (13, 16, 27, 32))
    session.add_box(1, 16, (11, 13, 29, 35))
    labels = session.propagate()
    zs = np.flatnonzero((labels == 1).any(axis=(1, 2)))
    assert set(range(8, 17)) <= set(zs.tolist())  # no gap between the prompts
    assert len(model.encoded) == session.slices_encoded  # every slice encoded once


def test_the_same_doubtful_slices_stop_a_pass_that_is_not_bounded():
    vol = ellipsoid(SHAPE, (15, 20, 24), (12, 10, 12))
    areas = {float((vol[z] > 0).sum()) for z in range(10, 14)}
    config = CarryConfig(min_iou=0.5)
    session = Session(FakeScan(vol), _FadingModel(doubtful=areas), window="0,1000",
                      predictor_options={"config": config})
    session.add_box(1, 16, (11, 13, 29, 35))
    zs = np.flatnonzero((session.propagate() == 1).any(axis=(1, 2)))
    assert zs[0] >= 14  # stopped at the doubtful slices (the control for the join test)


def test_one_sided_extent_keeps_the_stop_rule_at_the_other_end():
    vol = ellipsoid(SHAPE, (15, 20, 24), (12, 10, 12))
    areas = {float((vol[z] > 0).sum()) for z in range(20, 24)}
    session = Session(FakeScan(vol), _FadingModel(doubtful=areas), window="0,1000",
                      predictor_options={"config": CarryConfig(min_iou=0.5)})
    session.add_box(1, 16, (11, 13, 29, 35))
    session.set_extent(1, 8, None)
    zs = np.flatnonzero((session.propagate() == 1).any(axis=(1, 2)))
    assert zs[0] == 8 and zs[-1] <= 21


def leaking_plane(extra: int) -> tuple[np.ndarray, np.ndarray]:
    """A bright disc (the object) touching a mid-grey band (another tissue) that a box can pull in."""
    yy, xx = np.mgrid[:64, :64]
    plane = np.full((64, 64), 0.1, dtype=np.float32)
    plane[(yy - 32) ** 2 + (xx - 30) ** 2 <= 100] = 0.9
    plane[:, 40:40 + extra] = 0.55
    obj = (yy - 32) ** 2 + (xx - 30) ** 2 <= 100
    return plane, obj


class _GreedyModel:
    """Segments every pixel > 0.3 inside the box (so a box over the band takes the band too)."""

    is_image_model = True

    def encode_image(self, frame):
        import torch

        return torch.as_tensor(np.asarray(frame))[0]

    def decode(self, embedding, box=None, **_):
        import torch

        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        sel = np.zeros(embedding.shape, dtype=bool)
        sel[y0:y1 + 1, x0:x1 + 1] = embedding.numpy()[y0:y1 + 1, x0:x1 + 1] > 0.3
        return torch.from_numpy(np.where(sel, 8.0, -8.0).astype(np.float32))[None], torch.tensor([0.9])


def test_appearance_gate_stops_a_mask_creeping_into_other_tissue():
    import torch

    plane, obj = leaking_plane(12)
    appearance = AppearanceModel.learn(torch.from_numpy(plane), torch.from_numpy(obj))
    model = _GreedyModel()
    prev = torch.from_numpy(obj)
    gated = ungated = prev
    for _ in range(6):  # carry over six identical slices
        gated = carry_mask(model, model.encode_image(plane[None]), gated, CarryConfig(margin_ratios=(0.2,)),
                           plane=torch.from_numpy(plane), appearance=appearance).logits > 0
        ungated = carry_mask(model, model.encode_image(plane[None]), ungated,
                             CarryConfig(margin_ratios=(0.2,), appearance_gate=0.0)).logits > 0
    assert dice(gated.numpy(), obj) > 0.95
    assert dice(ungated.numpy(), obj) < 0.85  # without the gate it creeps into the band


def test_gate_all_drops_unlike_pixels_already_in_the_carried_mask():
    import torch

    plane, obj = leaking_plane(12)
    appearance = AppearanceModel.learn(torch.from_numpy(plane), torch.from_numpy(obj))
    leaked = obj.copy()
    leaked[22:43, 40:46] = True  # the previous slice's mask already took part of the band
    model = _GreedyModel()
    kept = {}
    for gate_all in (False, True):
        kept[gate_all] = carry_mask(model, model.encode_image(plane[None]), torch.from_numpy(leaked),
                                    CarryConfig(margin_ratios=(0.0,), gate_all=gate_all),
                                    plane=torch.from_numpy(plane), appearance=appearance).logits.numpy() > 0
    assert kept[False][30, 42]  # only new pixels are gated: the band already carried stays
    assert not kept[True][22:43, 40:46].any() and dice(kept[True], obj) > 0.95


def test_leaking_object_is_judged_gone_by_its_appearance():
    import torch

    plane, obj = leaking_plane(12)
    appearance = AppearanceModel.learn(torch.from_numpy(plane), torch.from_numpy(obj))
    band_only = np.full((64, 64), 0.1, dtype=np.float32)
    band_only[:, 20:45] = 0.55  # the object has ended; only the other tissue is under the box
    model = _GreedyModel()
    result = carry_mask(model, model.encode_image(band_only[None]), torch.from_numpy(obj),
                        CarryConfig(margin_ratios=(0.0,), appearance_gate=0.0, min_appearance=0.5),
                        plane=torch.from_numpy(band_only), appearance=appearance)
    assert result.signals["appearance"] < 0.5 and result.score <= 0


def _trackset(array):
    from volume.slicing import SliceGeometry
    from volume.tracks import TrackSet
    from volume.windowing import preset_window

    return TrackSet(array, SliceGeometry(array.shape, 0), preset_window("soft_tissue"), True, lambda frames: {})


@pytest.mark.parametrize("lung_fit, soft_fit, expected", [(0.9, 0.5, "lung"), (0.5, 0.9, "soft_tissue"),
                                                          (0.72, 0.7, "soft_tissue")])
def test_box_with_air_around_soft_centre_is_decided_by_box_fit(lung_fit, soft_fit, expected):
    vol = np.full((3, 40, 40), 40, dtype=np.int16)
    vol[:, 10:30, 10:16] = -850  # a crescent of lung beside soft tissue inside the box
    tracks = _trackset(vol)
    fits = {"lung": lung_fit, "soft_tissue": soft_fit}
    track = tracks.for_prompt(1, 1, box_frame=np.array([10, 10, 29, 29], np.float32),
                              box_fit=lambda t: fits[t.window.name])
    assert track.window.name == expected


def test_box_without_air_never_tries_the_lung_window():
    tracks = _trackset(np.full((3, 40, 40), 40, dtype=np.int16))
    track = tracks.for_prompt(1, 1, box_frame=np.array([10, 10, 29, 29], np.float32),
                              box_fit=lambda t: pytest.fail("no window trial expected"))
    assert track.window.name == "soft_tissue" and len(tracks.tracks) == 1


def test_mask_box_fit_is_one_for_a_mask_filling_the_box():
    from volume.tracks import mask_box_fit

    mask = np.zeros((20, 20), bool)
    mask[5:11, 4:15] = True
    assert mask_box_fit(mask, np.array([4, 5, 14, 10])) == pytest.approx(1.0)
    assert mask_box_fit(mask, np.array([0, 0, 19, 19])) == pytest.approx(66 / 400)


def test_a_pass_stopping_at_its_limit_keeps_the_next_prompts_slices():
    vol = ellipsoid(SHAPE, (14, 20, 24), (13, 10, 12))
    vol[12:14] = 0  # the object is missing on slices 12 and 13: the pass from slice 8 stops at 14, its limit
    session = Session(FakeScan(vol), ThresholdImageModel(), window="0,1000", cleanup=False)
    session.add_box(1, 8, (12, 14, 28, 34))
    session.add_box(1, 20, (12, 14, 28, 34))
    session.propagate()
    session.add_box(1, 8, (12, 14, 28, 34))  # a correction re-propagates from slice 8 only
    zs = np.flatnonzero((session.propagate() == 1).any(axis=(1, 2)))
    assert 15 in zs.tolist()  # slice 15 belongs to the backward pass from slice 20


class _FailingOnDecode(ThresholdImageModel):
    """Fails on the n-th decode (a window trial interrupted by an error)."""

    fail_at: int = 2

    def decode(self, embedding, **kwargs):
        if self.decodes + 1 == self.fail_at:
            self.decodes += 1
            raise RuntimeError("decoder failed")
        return super().decode(embedding, **kwargs)


def test_a_failed_window_trial_leaves_no_probe_object_behind():
    session = Session(FakeScan(ct_volume()), _FailingOnDecode(threshold=0.05))
    box = (14, 8, 30, 24)  # soft-tissue centre with a share of lung: both windows are tried
    with pytest.raises(RuntimeError, match="decoder failed"):
        session.add_box(1, 15, box)
    assert all(track.state["obj_ids"] == [] for track in session._tracks.tracks.values())
    session.add_box(1, 15, box)  # the session is still usable
    assert session.object_windows[1].name in ("soft_tissue", "lung")


class _DroppingModel(ThresholdImageModel):
    """Like the threshold model, but its mask is empty on slices whose object area is in `dropped`."""

    def __init__(self, dropped):
        super().__init__()
        self.dropped = set(dropped)

    def decode(self, embedding, **prompts):
        logits, iou = super().decode(embedding, **prompts)
        if float((embedding > 0.75).sum()) in self.dropped:
            logits, iou = logits * 0 - 8.0, iou * 0 + 0.05
        return logits, iou


def _dropping_session(vol: np.ndarray) -> Session:
    areas = {float((vol[z] > 0).sum()) for z in (20, 21)}  # the model loses the object on 20 and 21 (and 9, 10)
    return Session(FakeScan(vol), _DroppingModel(areas), window="0,1000")


def test_carrying_inside_the_extent_goes_on_past_slices_where_the_mask_vanished():
    vol = ellipsoid(SHAPE, (15, 20, 24), (12, 10, 12))
    session = _dropping_session(vol)
    session.add_box(1, 12, (12, 14, 28, 34))
    session.set_extent(1, 11, 24)
    zs = set(np.flatnonzero((session.propagate() == 1).any(axis=(1, 2))).tolist())
    assert {22, 23, 24} <= zs and not {20, 21} & zs  # carried on from slice 19, over the two empty slices


def test_the_same_vanishing_mask_ends_a_pass_that_is_not_bounded():
    vol = ellipsoid(SHAPE, (15, 20, 24), (12, 10, 12))
    session = _dropping_session(vol)
    session.add_box(1, 12, (12, 14, 28, 34))
    zs = np.flatnonzero((session.propagate() == 1).any(axis=(1, 2)))
    assert zs[-1] == 19  # the control: two empty slices end the object outside an extent


def test_gap_seeds_are_the_slices_carried_on_right_after_an_empty_one():
    vol = ellipsoid(SHAPE, (15, 20, 24), (12, 10, 12))
    session = _dropping_session(vol)
    session.add_box(1, 12, (12, 14, 28, 34))
    session.set_extent(1, 11, 24)
    session.propagate()
    seeds = session._gap_seeds()
    assert sorted(seeds[1]) == [22]  # not 24, the extent's own end, nor 19 before the gap
    assert seeds[1][22].sum() == (vol[22] > 0).sum()


def _doubting_session(kept: set) -> Session:
    """Slices 20-21 doubted (predicted IoU 0.1 under min_iou 0.5); the predictor keeps `kept` as ends."""
    vol = ellipsoid(SHAPE, (15, 20, 24), (12, 10, 12))
    areas = {float((vol[z] > 0).sum()) for z in (20, 21)}  # (and 9, 10 below the prompt)
    session = Session(FakeScan(vol), _FadingModel(doubtful=areas), window="0,1000",
                      predictor_options={"config": CarryConfig(min_iou=0.5)})
    session.predictor.kept_at_end = lambda state, obj, frame: frame in kept
    return session


def test_an_absent_slice_the_predictor_keeps_as_the_end_is_labelled_and_reported():
    session = _doubting_session(kept={20})
    session.add_box(1, 16, (11, 13, 29, 35))
    reported = []
    labels = session.propagate(direction="forward", on_slice=lambda s, plane: reported.append((s, (plane == 1).any())))
    zs = np.flatnonzero((labels == 1).any(axis=(1, 2)))
    assert zs[-1] == 20 and (20, True) in reported  # 21 doubted too and not kept: the direction ended there
    assert session.scores[1][20] > 0


def test_an_end_inside_the_extent_is_no_end():
    session = _doubting_session(kept=set())
    session.add_box(1, 16, (11, 13, 29, 35))
    session.set_extent(1, None, 24)
    zs = np.flatnonzero((session.propagate(direction="forward") == 1).any(axis=(1, 2)))
    assert zs[-1] == 24  # the doubted slices do not end a pass inside the extent
