"""The recogniser: learns real crops quickly, is deterministic, reports per-class results."""

import numpy as np
import pytest
import torch

from plategen.dataset import build_samples, is_holdout
from plategen.errors import PlategenError
from plategen.recognizer import Schedule, evaluate, predict, train_recognizer


@pytest.fixture(scope="module")
def uc3m(imported):
    plates = imported("uc3m-lp").plates
    train = [p for p in plates if not is_holdout(p)][:150]
    test = [p for p in plates if is_holdout(p)][:80]
    charset = sorted({c for p in plates for c in p.text})
    return build_samples(train, charset), build_samples(test, charset)


def test_learns_above_chance_quickly(uc3m):
    torch.set_num_threads(1)
    train, test = uc3m
    trained = train_recognizer(train.crops, train.labels, len(train.charset), Schedule(steps=120, eval_points=3),
                               seed=0, curve_set=(test.crops, test.labels))
    ev = evaluate(trained.model, test.crops, test.labels, train.charset)
    chance = np.bincount(test.labels).max() / len(test.labels)  # always guessing the commonest class
    assert ev.accuracy > max(0.5, 3 * chance), ev.accuracy
    assert [s for s, _ in trained.curve] == [40, 80, 120]
    assert ev.count == len(test.labels)
    assert sum(s.count for s in ev.per_class.values()) == len(test.labels)
    assert sum(n for _, _, n in ev.confusions) == len(test.labels) - round(ev.accuracy * len(test.labels))
    d = ev.to_dict()
    assert set(d) == {"accuracy", "count", "per_class", "confusions"}


def test_same_seed_same_model(uc3m):
    train, test = uc3m
    a = train_recognizer(train.crops[:200], train.labels[:200], len(train.charset), Schedule(steps=4), seed=3)
    b = train_recognizer(train.crops[:200], train.labels[:200], len(train.charset), Schedule(steps=4), seed=3)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert np.array_equal(predict(a.model, test.crops), predict(b.model, test.crops))


def test_bad_inputs_are_clear_errors(uc3m):
    train, _ = uc3m
    with pytest.raises(PlategenError, match="labels"):
        train_recognizer(train.crops[:10], train.labels[:9], 34)
    with pytest.raises(PlategenError, match="0..1"):
        train_recognizer(train.crops[:10], train.labels[:10] + 5, 2)
    with pytest.raises(PlategenError, match="uint8"):
        train_recognizer(train.crops[:10].astype(np.float32), train.labels[:10], 34)
