"""The classical baseline generator: shapes, its own seeded randomness, clear errors."""

import numpy as np
import pytest
import torch

from plategen.errors import PlategenError
from plategen.render import augment_crops, render_characters

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
