"""The classical baseline generator: shapes, its own seeded randomness, clear errors."""

import numpy as np
import pytest
import torch

from plategen.errors import PlategenError
from plategen.render import augment_crops, degrade, render_characters

CHARS = list("0123456789BCDFGHJKLMNPRSTVWXYZ")


def test_render_shapes_and_determinism():
    a = render_characters(CHARS, np.random.default_rng(5))
    b = render_characters(CHARS, np.random.default_rng(5))
    c = render_characters(CHARS, np.random.default_rng(6))
    assert a.shape == (len(CHARS), 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.std() > 20  # not blank: ink and background differ


def test_render_does_not_touch_global_random_state():
    np.random.seed(1)
    torch.manual_seed(1)
    before_np, before_torch = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    render_characters(CHARS[:5], np.random.default_rng(0))
    augment_crops(np.zeros((3, 32, 32, 3), np.uint8) + 100, np.random.default_rng(0))
    assert np.array_equal(np.random.get_state()[1], before_np)
    assert torch.equal(torch.get_rng_state(), before_torch)


def test_augment_crops_keeps_shape_and_varies():
    crops = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    out = augment_crops(crops, np.random.default_rng(1))
    assert out.shape == crops.shape and out.dtype == np.uint8
    assert not np.array_equal(out, crops)
    with pytest.raises(PlategenError):
        augment_crops(crops[..., 0], np.random.default_rng(1))


def test_uncovered_character_is_an_error():
    with pytest.raises(PlategenError, match="U\\+13000"):
        render_characters(["A", "\U00013000"], np.random.default_rng(0))


def test_degrading_a_plate_moves_its_boxes_with_its_characters():
    """A tilted, shifted, scaled plate keeps exact boxes (the plate benchmark cuts two-row plates by them):
    the moved box is the upright box around the square's ink; the unmoved box misses some of it."""
    missed = []
    for seed in range(12):
        image = np.full((120, 240, 3), 230, np.float32)
        box = (170, 30, 210, 90)  # off-centre, so the rotation about the centre moves it
        image[box[1]:box[3], box[0]:box[2]] = 20
        out, (moved,) = degrade(image, np.random.default_rng(seed), unit=2.0, boxes=[box])
        ys, xs = np.nonzero(out.mean(axis=2) < 100)
        ink_box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert np.abs(np.subtract(moved, ink_box)).max() <= 3  # blur and JPEG soften the square's edge
        bx0, by0, bx1, by1 = box
        missed.append(1 - ((xs >= bx0) & (xs < bx1) & (ys >= by0) & (ys < by1)).mean())
    assert max(missed) > 0.05
