import numpy as np
import pytest

from dvs_cluster.core.regions import RegionGrid


@pytest.mark.parametrize(
    ("w", "h", "rows", "cols", "overlap"),
    [(1024, 512, 2, 2, 0), (1023, 511, 2, 2, 0), (101, 37, 3, 4, 0), (97, 53, 2, 3, 7), (64, 32, 1, 1, 5)],
)
def test_split_assemble_round_trip(w: int, h: int, rows: int, cols: int, overlap: int) -> None:
    grid = RegionGrid(w, h, rows, cols, overlap)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 19, (h, w), dtype=np.uint8)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    # Cores tile the frame exactly.
    cover = np.zeros((h, w), np.int32)
    for r in grid.regions:
        cover[r.core_slices] += 1
        assert r.width == r.px1 - r.px0 and r.core_width == r.x1 - r.x0
    assert (cover == 1).all()
    assert len(grid) == rows * cols
    assert [r.index for r in grid.regions] == list(range(rows * cols))
    parts = grid.split(labels)
    np.testing.assert_array_equal(grid.assemble_labels(parts), labels)
    # Equal confidences: ties keep the core owner, still exact.
    conf = [np.ones(p.shape, np.float32) for p in parts]
    np.testing.assert_array_equal(grid.assemble_labels(parts, conf), labels)
    crops = grid.split(image)
    assert all(c.flags.c_contiguous for c in crops)
    for r, c in zip(grid.regions, crops, strict=True):
        assert c.shape == (r.height, r.width, 3)
    logits = rng.standard_normal((5, h, w)).astype(np.float32)
    np.testing.assert_array_equal(grid.assemble_logits(grid.split_channels(logits)), logits)


def test_unequal_sizes_for_odd_frames() -> None:
    grid = RegionGrid(1023, 511)
    widths = sorted({r.core_width for r in grid.regions})
    heights = sorted({r.core_height for r in grid.regions})
    assert widths == [511, 512] and heights == [255, 256]


def test_overlap_padding_clamped_to_frame() -> None:
    grid = RegionGrid(100, 50, 2, 2, overlap=8)
    r0, r3 = grid.regions[0], grid.regions[3]
    assert (r0.px0, r0.py0, r0.px1, r0.py1) == (0, 0, 58, 33)
    assert (r3.px0, r3.py0, r3.px1, r3.py1) == (42, 17, 100, 50)


def test_overlap_merge_keeps_higher_max_logit() -> None:
    grid = RegionGrid(20, 10, 1, 2, overlap=3)  # cores x 0..10 | 10..20, padded 0..13 | 7..20
    left, right = grid.regions
    lab_l = np.full((left.height, left.width), 1, np.uint8)
    lab_r = np.full((right.height, right.width), 2, np.uint8)
    conf_l = np.full(lab_l.shape, 1.0, np.float32)
    conf_r = np.full(lab_r.shape, 2.0, np.float32)
    out = grid.assemble_labels([lab_l, lab_r], [conf_l, conf_r])
    # Right region is more confident: it wins the whole overlap (x 7..13), left keeps x < 7.
    assert (out[:, :7] == 1).all() and (out[:, 7:] == 2).all()
    conf_l[:, 10:] = 3.0  # left more confident on x 10..13 (inside the right core)
    out = grid.assemble_labels([lab_l, lab_r], [conf_l, conf_r])
    assert (out[:, :7] == 1).all() and (out[:, 7:10] == 2).all()
    assert (out[:, 10:13] == 1).all() and (out[:, 13:] == 2).all()
    # Full logits: same rule, per pixel max over channels.
    lg_l = np.zeros((3, *lab_l.shape), np.float32)
    lg_l[1] = conf_l
    lg_r = np.zeros((3, *lab_r.shape), np.float32)
    lg_r[2] = conf_r
    merged = grid.assemble_logits([lg_l, lg_r])
    np.testing.assert_array_equal(merged.argmax(axis=0), out)


def test_bad_inputs() -> None:
    grid = RegionGrid(64, 32)
    with pytest.raises(ValueError, match="frame is"):
        grid.split(np.zeros((31, 64), np.uint8))
    with pytest.raises(ValueError, match="expected 4 parts"):
        grid.assemble_labels([np.zeros((16, 32), np.uint8)])
    with pytest.raises(ValueError):
        RegionGrid(3, 3, 4, 4)
