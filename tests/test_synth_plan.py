"""The plan: every draw of every image gets its own (glyph, style) pair while pairs last."""

from __future__ import annotations

import collections

import numpy as np

from plategen.synth.plan import GlyphPool, make_plan, style_entries_needed


def test_plan_gives_every_draw_its_own_pair_while_pairs_last():
    glyphs = GlyphPool(np.zeros((6, 2, 2), np.uint8), ["f"] * 6, offset=[0, 4], size=[4, 2])
    assert style_entries_needed([10, 3], glyphs, 4) == 10  # A: 10 images x 4 draws over 4 glyphs
    plan = make_plan(["A", "B"], [10, 3], glyphs, style_entries=10, seed=1, draws=4)
    assert plan.glyph.shape == plan.style.shape == (4, 13)
    for li, count in enumerate([10, 3]):
        mine = plan.label == li
        pairs = set(zip(plan.glyph[:, mine].ravel().tolist(), plan.style[:, mine].ravel().tolist()))
        assert len(pairs) == 4 * count  # first draws and retries never share a pair
    assert set(plan.glyph[:, plan.label == 1].ravel().tolist()) <= {4, 5}  # B's own glyph variants
    one = GlyphPool(np.zeros((1, 2, 2), np.uint8), ["f"], offset=[0], size=[1])
    short = make_plan(["A"], [30], one, style_entries=10, seed=1, draws=4)  # 10 pairs for 30 images
    assert sorted(collections.Counter(short.style[0].tolist()).values()) == [3] * 10  # every pair, then again
