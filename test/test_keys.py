import numpy as np

from dvs_cluster.core.keys import KeyBuffer, KeyFrame


def _key(t: int) -> KeyFrame:
    return KeyFrame(t, np.zeros((8, 8, 3), np.uint8), np.zeros((19, 2, 2), np.float32))


def test_key_buffer_newest_wins() -> None:
    buf = KeyBuffer(4)
    assert len(buf) == 4 and buf.get(0) is None and buf.age(0, 5) is None
    assert buf.put(0, _key(3))
    assert buf.age(0, 5) == 2 and buf.timestep(0) == 3
    assert not buf.put(0, _key(2))  # older never replaces newer
    assert buf.timestep(0) == 3
    assert buf.put(0, _key(7)) and buf.timestep(0) == 7
    assert _key(0).nbytes == 8 * 8 * 3 + 19 * 4 * 4
    buf.clear(0)
    assert buf.get(0) is None
    buf.put(1, _key(1))
    buf.clear()
    assert all(k is None for k in buf)


def test_a_fresher_key_beats_a_longer_chain() -> None:
    """Propagated states are ordered by the key behind them, then by frame."""
    img = np.zeros((4, 4, 3), np.uint8)
    lg = np.zeros((19, 1, 1), np.float32)
    buf = KeyBuffer(1)
    assert buf.put(0, KeyFrame(5, img, lg))
    assert buf.put(0, KeyFrame(9, img, lg, root=5))  # the key's chain moves on
    assert buf.timestep(0) == 5 and buf.get(0).timestep == 9  # type: ignore[union-attr]
    assert not buf.put(0, KeyFrame(5, img, lg))  # the key itself is older than its own chain
    assert not buf.put(0, KeyFrame(8, img, lg, root=5))
    assert buf.put(0, KeyFrame(7, img, lg))  # a newer key, though an older frame than the chain
    assert buf.timestep(0) == 7 and buf.age(0, 10) == 3
