"""The recogniser: learns real crops quickly, is deterministic, reports per-class results."""

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from plategen.dataset import build_samples, is_holdout
from plategen.errors import PlategenError
from plategen.plates import read_image
from plategen.recognizer import (FrameTargets, PlateSchedule, Schedule, align, augment_plates, box_centres, decode,
                                 edit_distance, encode_texts, evaluate, evaluate_plates, one_cycle, plate_tensor, predict,
                                 read_plates, train_plate_recognizer, train_recognizer)


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


@pytest.fixture(scope="module")
def uc3m_plates(imported):
    """100 training plates and 40 held-out ones, at the plate recogniser's input size, with their texts,
    and the training plates' character box centres."""
    plates = imported("uc3m-lp").plates
    train = [p for p in plates if not is_holdout(p)][:100]
    test = [p for p in plates if is_holdout(p)][:40]
    height, width = PlateSchedule().input_size

    def images(group):
        return np.stack([cv2.resize(read_image(p.image_path), (width, height), interpolation=cv2.INTER_AREA)
                         for p in group])

    alphabet = "".join(sorted({c for p in plates for c in p.text}))
    centres = [box_centres(p.boxes, *read_image(p.image_path).shape[1::-1]) for p in train]
    return images(train), [p.text for p in train], images(test), [p.text for p in test], alphabet, centres


# with the box centres' per-column loss, CTC never waits on its plateau (without it, ~300 steps here)
@pytest.mark.parametrize("head, steps", [("ctc", 200), ("slots", 200)])
def test_plate_recognizer_reads_its_training_plates(uc3m_plates, head, steps):
    torch.set_num_threads(1)
    x, texts, x_test, texts_test, alphabet, centres = uc3m_plates
    schedule = PlateSchedule(steps=steps, head=head, eval_points=2)
    trained = train_plate_recognizer(x, texts, alphabet, schedule, seed=0, curve_set=(x_test, texts_test),
                                     centres=centres)
    assert np.mean(trained.losses[-20:]) < 0.3 * np.mean(trained.losses[:20])
    ev = evaluate_plates(trained, x, texts)
    assert ev.plate_accuracy > 0.6, ev.to_dict()
    read = read_plates(trained, x)
    assert ev.plate_accuracy == np.mean([r == t for r, t in zip(read, texts)])
    assert ev.char_accuracy == 1 - sum(edit_distance(t, r) for t, r in zip(texts, read)) / sum(map(len, texts))
    assert sum(s.count for s in ev.per_length.values()) == ev.count == len(texts)
    assert [s for s, _ in trained.curve] == [steps // 2, steps]


def test_plate_augmentation_varies_plates_without_destroying_them(uc3m_plates):
    x = plate_tensor(uc3m_plates[0][:64], PlateSchedule().input_size)
    a, warp = augment_plates(x.clone(), torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1 and warp.shape == (64, 2, 3)
    assert torch.equal(a, augment_plates(x.clone(), torch.Generator().manual_seed(1))[0])
    assert not torch.equal(a, augment_plates(x.clone(), torch.Generator().manual_seed(2))[0])
    assert (a - x).abs().mean() > 0.02  # every batch is changed...
    flat_x, flat_a = x.mean(1).flatten(1), a.mean(1).flatten(1)
    corr = [np.corrcoef(u, v)[0, 1] for u, v in zip(flat_x.numpy(), flat_a.numpy())]
    assert np.median(corr) > 0.6, corr  # ...but each plate stays close to itself (small warp, mild noise)


def test_ctc_and_slot_decoding():
    assert decode([0, 1, 1, 0, 1, 2, 2, 0, 0], "AB", ctc=True) == "AAB"  # repeats merge unless a blank parts them
    assert decode([0, 0, 0], "AB", ctc=True) == ""
    assert decode([1, 1, 2, 0, 0], "AB", ctc=False) == "AAB"  # slots: no merging, pads dropped
    assert decode([2, 0, 1, 0], "AB", ctc=False) == "BA"


def test_edit_distance_and_alignment():
    assert edit_distance("1234BCD", "1234BCD") == 0
    assert edit_distance("1234BCD", "1284BCD") == 1
    assert edit_distance("1234BCD", "134BCD") == 1
    assert edit_distance("1234BCD", "1234BCDX") == 1
    assert edit_distance("ABC", "") == 3
    assert edit_distance("", "AB") == 2
    assert edit_distance("KITTEN", "SITTING") == 3
    assert align("1234", "1834") == [("1", "1"), ("2", "8"), ("3", "3"), ("4", "4")]
    assert align("1234", "124") == [("1", "1"), ("2", "2"), ("3", ""), ("4", "4")]


@pytest.mark.parametrize("head", ["slots", "ctc"])
def test_plate_recognizer_same_seed_same_model(uc3m_plates, head):
    x, texts, x_test, _, alphabet, centres = uc3m_plates
    schedule = PlateSchedule(steps=3, batch_size=8, head=head)
    a, b, c = (train_plate_recognizer(x[:30], texts[:30], alphabet, schedule, seed=s, centres=centres[:30])
               for s in (5, 5, 6))
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert a.losses == b.losses != c.losses
    assert read_plates(a, x_test) == read_plates(b, x_test)


def test_a_warmup_of_exactly_one_step_trains(uc3m_plates):
    """`benchmark --level plates --steps 20` (a warmup of 0.05 x 20 = 1 step) crashed in torch's one-cycle schedule
    with a ZeroDivisionError after the plates were drawn; the character recogniser's (0.15) and the detector's (0.1)
    share the rule."""
    x, texts, _, _, alphabet, centres = uc3m_plates
    schedule = PlateSchedule(steps=20, batch_size=4)
    assert schedule.warmup * schedule.steps == 1
    trained = train_plate_recognizer(x[:8], texts[:8], alphabet, schedule, seed=0, centres=centres[:8])
    assert len(trained.losses) == 20 and all(np.isfinite(trained.losses))
    for steps, warmup in ((20, 0.05), (10, 0.1), (40, 0.05)):
        opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
        sched = one_cycle(opt, 1e-3, steps, warmup)
        rates = []
        for _ in range(steps):
            opt.step()
            sched.step()
            rates.append(opt.param_groups[0]["lr"])
        assert max(rates) <= 1e-3 and rates[-1] < 0.05 * max(rates)  # it rises to lr at most and anneals by the end


def test_plate_recognizer_bad_inputs_are_clear_errors(uc3m_plates):
    x, texts, _, _, alphabet, centres = uc3m_plates
    with pytest.raises(PlategenError, match="outside the alphabet: Q"):
        train_plate_recognizer(x[:2], [texts[0], "12Q"], alphabet.replace("Q", ""))
    with pytest.raises(PlategenError, match="2 images but 1 texts"):
        train_plate_recognizer(x[:2], texts[:1], alphabet)
    with pytest.raises(PlategenError, match="uint8"):
        train_plate_recognizer(x[:2].astype(np.float32), texts[:2], alphabet)
    with pytest.raises(PlategenError, match="1..10 characters"):
        train_plate_recognizer(x[:1], ["1" * 11], alphabet, PlateSchedule(head="slots"))
    with pytest.raises(PlategenError, match="one box centre per character"):
        train_plate_recognizer(x[:2], texts[:2], alphabet, centres=[centres[0][:-1], centres[1]])


def test_frame_labels_put_each_character_at_its_box_centre_column(uc3m_plates):
    x, texts, _, _, alphabet, centres = uc3m_plates
    columns = PlateSchedule().columns
    targets = encode_texts(texts, alphabet, columns)
    frames = FrameTargets.of(centres, targets, columns)
    labels = frames.labels(torch.arange(len(texts)), None, columns)
    one_row = [i for i, c in enumerate(centres) if np.all(np.diff(c[:, 0]) > 1.5 / columns)
               and all(a != b for a, b in zip(texts[i], texts[i][1:]))]
    assert len(one_row) > 50
    for i in one_row:
        cols = (centres[i][:, 0] * columns).astype(int)
        assert labels[i, cols].tolist() == targets[i]  # each character where its box is
        far = [k for k in range(columns) if np.abs(cols - k).min() > 1]
        assert (labels[i, far] == 0).all()  # blank away from every character
        assert (labels[i] == -100).sum() == columns - len(cols) - len(far)  # ignored beside them
    # the augmentation's warp moves the labels with the characters: an eighth of the width to the left
    warp = torch.tensor([[1.0, 0.0, 0.25], [0.0, 1.0, 0.0]]).expand(len(texts), 2, 3)
    shifted = frames.labels(torch.arange(len(texts)), warp, columns)
    i = next(i for i in one_row if (centres[i][:, 0] * columns).min() >= 2)
    assert torch.equal(shifted[i, :-2], labels[i, 2:]) and labels[i].max() > 0
    # a plate without boxes, or with its characters out of reading order (two rows), teaches no column
    two_rows = np.array([[0.4, 0.3], [0.6, 0.3], [0.3, 0.7], [0.5, 0.7]], np.float32)
    odd = FrameTargets.of([np.zeros((0, 2)), two_rows], [[1, 2], [1, 2, 3, 4]], columns)
    assert (odd.labels(torch.arange(2), None, columns) == -100).all()


def test_box_centres_add_a_per_column_loss_to_ctc(uc3m_plates):
    x, texts, _, _, alphabet, centres = uc3m_plates
    schedule = PlateSchedule(steps=3, batch_size=8)
    plain = train_plate_recognizer(x[:16], texts[:16], alphabet, schedule, seed=1)
    framed = train_plate_recognizer(x[:16], texts[:16], alphabet, schedule, seed=1, centres=centres[:16])
    off = train_plate_recognizer(x[:16], texts[:16], alphabet, replace(schedule, frame=0), seed=1,
                                 centres=centres[:16])
    assert framed.losses[0] > plain.losses[0] == off.losses[0]
    assert plain.losses == off.losses
