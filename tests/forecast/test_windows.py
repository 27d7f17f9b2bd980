import numpy as np

from tasks.forecast import windows


def test_split_bounds_follow_the_lab_code():
    assert windows.split_bounds(420_551) == {"train": (0, 294_385), "val": (294_385, 378_495), "test": (378_495, 420_551)}
    assert windows.split_bounds(100) == {"train": (0, 70), "val": (70, 90), "test": (90, 100)}


def test_windows_are_stride_one_and_in_order():
    values = np.arange(40, dtype=np.float32).reshape(20, 2)
    x, y = windows.make_windows(values, 6, 3)
    assert x.shape == (20 - 9 + 1, 6, 2) and y.shape == (12, 3, 2)
    np.testing.assert_array_equal(x[0], values[0:6])
    np.testing.assert_array_equal(y[0], values[6:9])
    np.testing.assert_array_equal(x[1], values[1:7])
    np.testing.assert_array_equal(y[-1], values[17:20])


def test_no_window_crosses_a_split_boundary():
    n = 200
    values = np.stack([np.arange(n), np.arange(n)], axis=1).astype(np.float32)
    w = windows.build(values, 6, 9)
    for split, (a, b) in w.bounds.items():
        rows = np.concatenate([w.x[split][..., 0].ravel(), w.y[split][..., 0].ravel()])
        assert rows.min() >= a and rows.max() < b, split
        assert len(w.x[split]) == (b - a) - 15 + 1


def test_normalization_statistics_come_from_the_training_split_only():
    values = np.concatenate([np.zeros((70, 2)), np.full((30, 2), 100.0)]).astype(np.float32)
    w = windows.build(values, 6, 3)
    np.testing.assert_array_equal(w.mean, [0, 0])


def test_persistence_and_mae():
    x = np.array([[[1.0, 10.0], [2.0, 20.0]]], np.float32)
    p = windows.persistence(x, 3)
    assert p.shape == (1, 3, 2) and (p[0, :, 0] == 2).all() and (p[0, :, 1] == 20).all()
    y = p + np.array([0.5, -1.0], np.float32)
    np.testing.assert_allclose(windows.mae_per_feature(p, y), [0.5, 1.0])


def test_the_models_delta_scale_is_the_persistence_error_on_the_training_windows():
    from tasks.forecast.task import TASK

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, [0.1, 1.0], (140, 2)).cumsum(axis=0),
                             rng.normal(0, [5.0, 9.0], (60, 2)).cumsum(axis=0)]).astype(np.float32)
    w = windows.build(values, 6, 3)
    st = TASK.stats(w, 3)
    train = windows.mae_per_feature(windows.persistence(w.x["train"], 3), w.y["train"])
    np.testing.assert_allclose(st.delta_scale, train, rtol=1e-6)
    np.testing.assert_allclose(st.mean, w.mean, rtol=1e-6)
    np.testing.assert_allclose(st.std, w.std, rtol=1e-6)
    test = windows.mae_per_feature(windows.persistence(w.x["test"], 3), w.y["test"])
    assert not np.allclose(st.delta_scale, test, rtol=0.1)  # the test split plays no part
