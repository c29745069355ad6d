from plategen.dataset import build_samples, is_holdout, plate_key


def test_samples_pair_each_crop_with_its_own_plate(imported):
    plates = imported("uc3m-lp").plates[:40]
    samples = build_samples(plates)
    assert samples.crops.shape == (sum(len(p.text) for p in plates), 32, 32, 3)
    assert samples.styles.shape == (40, 32, 96, 3)
    for i in [0, 17, len(samples.labels) - 1]:
        plate = plates[samples.plate_index[i]]
        assert samples.charset[samples.labels[i]] in plate.text
    sub = samples.subset([3, 1])
    assert [p.image_path for p in sub.plates] == [plates[1].image_path, plates[3].image_path]
    assert len(sub.labels) == len(plates[1].text) + len(plates[3].text)


def test_holdout_is_about_a_fifth_and_keeps_frames_of_a_plate_together(imported):
    plates = imported("uc3m-lp").plates
    held = [p for p in plates if is_holdout(p)]
    assert 0.15 < len(held) / len(plates) < 0.25
    held_keys = {plate_key(p) for p in held}
    assert not any(plate_key(p) in held_keys for p in plates if not is_holdout(p))


def test_two_row_plates_read_top_row_first_but_keep_their_holdout_key(imported):
    """The key predates reading order: a two-row plate keeps the key (and so the holdout side)
    of its characters left to right, so the shipped model's held-out plates stay unseen."""
    plate = next(p for p in imported("uc3m-lp").plates if p.image_path.name == "00011_BN-695-B-D.jpg")
    assert plate.text == "695BD"
    assert plate_key(plate) == "uc3m-lp/B695D"
