"""Knowledge distillation: the teacher's softened outputs as targets, its loss, its recipe checks, one tiny build."""
import numpy as np
import pytest

from harness.core import constraints, recipes
from harness.core.errors import HarnessError
from harness.core.paths import ROOT
from harness.core.task import Context, get
from harness.pipeline import run
from tasks.kws import distill
from tasks.kws.objective import objective
from tests.kws.conftest import OVERRIDES

RECIPE = ROOT / "tests/kws/pair_recipe.toml"


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_targets_are_the_labels_then_the_teachers_probabilities_at_the_temperature():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    rows = distill.targets(np.array([0, 2]), logits, temperature=2.0)
    assert rows.shape == (2, 6) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows[:, :3], [[1, 0, 0], [0, 0, 1]])  # the label, not the teacher's answer
    np.testing.assert_allclose(rows[:, 3:], _softmax(logits / 2.0), rtol=1e-6)
    # known value: softmax([1, 0, -0.5]) (the first row at T = 2)
    np.testing.assert_allclose(rows[0, 3:], [0.6285317, 0.2312239, 0.1402444], rtol=1e-6)
    cold, hot = distill.targets(np.array([0]), logits[:1], 1.0), distill.targets(np.array([0]), logits[:1], 8.0)
    assert cold[0, 3] > rows[0, 3] > hot[0, 3]  # a higher temperature gives flatter targets


def test_the_loss_mixes_label_and_teacher_cross_entropy_by_weight_and_t_squared():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 1, 0])
    t, w = 3.0, 0.25
    y = distill.targets(labels, teacher, t)
    got = distill.loss(3, t, w)(y, student).numpy()
    p_student, p_student_t = _softmax(student.astype(np.float64)), _softmax(student / t)
    hard = -np.log(p_student[np.arange(5), labels])
    soft = -(y[:, 3:] * np.log(p_student_t)).sum(axis=1)
    np.testing.assert_allclose(got, (1 - w) * hard + w * t * t * soft, rtol=1e-4)
    # the accuracy reads the labels half only
    acc = distill.accuracy(3)(y, student).numpy()
    np.testing.assert_array_equal(acc, (student.argmax(1) == labels).astype(np.float32))


def test_the_objective_trains_on_the_teacher_only_when_given_its_logits():
    task = get("kws")
    rec = recipes.load(RECIPE, task, ["distill.weight=0.5", "distill.temperature=2.0"])
    y_tr, y_val = np.array([0, 1, 1]), np.array([1, 0])
    logits = (np.array([[1.0, -1.0], [0.0, 2.0], [3.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.0]]))
    loss, metrics, monitor, t_tr, t_val = objective(rec, 2, y_tr, y_val, logits)
    assert monitor == ("val_categorical_accuracy", "max") and metrics[0].__name__ == "categorical_accuracy"
    np.testing.assert_allclose(t_tr, distill.targets(y_tr, logits[0], 2.0))
    np.testing.assert_allclose(t_val, distill.targets(y_val, logits[1], 2.0))
    *_, plain_tr, plain_val = objective(rec, 2, y_tr, y_val, None)
    assert plain_tr is y_tr and plain_val is y_val


def test_the_recipe_refuses_a_teacher_it_could_not_build_naming_the_key():
    task = get("kws")
    assert recipes.load(RECIPE, task)["distill"]["weight"] == 0.0  # off unless asked
    with pytest.raises(HarnessError, match="distill.teacher_width"):
        recipes.load(RECIPE, task, ["distill.weight=0.5", "distill.teacher_width=0.0"])
    with pytest.raises(HarnessError, match="distill.weight"):
        recipes.load(RECIPE, task, ["distill.weight=1.5"])
    with pytest.raises(HarnessError, match="distill.weight.*qat_epochs"):
        recipes.load(RECIPE, task, ["distill.weight=0.5", "quantize.mode=\"int8\"", "quantize.qat_epochs=1"])
    with pytest.raises(HarnessError, match=r"\[distill\] teacher_width"):
        recipes.load(RECIPE, task, ["distill.weight=0.5", "distill.teacher_width=1000.0"])


def test_a_distilled_build_ships_the_student_alone_and_trains_it_on_the_teacher(tiny_run, tiny_data):
    single, _ = tiny_run
    cons = constraints.load_file(tiny_data / "constraints" / "tiny" / "version-a.toml")
    lines = []
    ctx = Context(data_dir=tiny_data / "data", log=lines.append)
    out = run.run_task(ctx, cons, "kws", recipe_path=RECIPE, use_cache=False,
                       overrides=OVERRIDES + ["distill.weight=0.5", "distill.teacher_width=0.5"])
    build = out.report["build"]
    teacher = build["teacher"]
    assert teacher["params"] > build["params"] == single.report["build"]["params"]  # the file holds the student
    assert 0.0 <= teacher["val_accuracy"] <= 1.0 and teacher["train_seconds"] > 0
    epochs = [line for line in lines if " train epoch " in line]
    assert len(epochs) == 2  # the teacher's one epoch, then the student's
    assert "sparse_categorical_accuracy" in epochs[0]  # the teacher learns the labels
    assert " categorical_accuracy" in epochs[1] and "sparse" not in epochs[1]  # the student, the distillation loss
    assert out.report["metrics"]["size_bytes"] == len(out.files["model.tflite.zip"])


def test_label_smoothing_reaches_the_loss_the_model_trains_with():
    task = get("kws")
    rec = recipes.load(RECIPE, task, ["train.label_smoothing=0.2"])
    y_tr, y_val = np.array([0, 1, 1]), np.array([1, 0])
    loss, metrics, monitor, t_tr, t_val = objective(rec, 2, y_tr, y_val)
    assert monitor == ("val_categorical_accuracy", "max") and metrics == ["categorical_accuracy"]
    np.testing.assert_array_equal(t_tr, np.eye(2)[y_tr])
    np.testing.assert_array_equal(t_val, np.eye(2)[y_val])
    logits = np.array([[3.0, -1.0], [0.5, 2.0], [-2.0, 1.0]], np.float32)
    smoothed = t_tr * 0.8 + 0.1
    expected = -(smoothed * np.log(_softmax(logits))).sum(axis=1).mean()
    assert float(loss(t_tr, logits)) == pytest.approx(expected, rel=1e-5)
    plain = -(t_tr * np.log(_softmax(logits))).sum(axis=1).mean()
    assert abs(expected - plain) > 0.05


def test_the_teacher_trains_unpruned_at_its_own_width():
    task = get("kws")
    rec = recipes.load(RECIPE, task, ["distill.weight=0.5", "distill.teacher_width=1.0"])
    assert rec.data["prune"]["final_sparsity"] > 0  # the student's recipe prunes
    teacher = distill.teacher_recipe(rec)
    assert teacher["prune"]["final_sparsity"] == 0.0 and teacher["prune"]["initial_sparsity"] == 0.0
    assert teacher["model"] == {**rec.data["model"], "width": 1.0}
    assert rec.data["prune"]["final_sparsity"] > 0 and rec.data["model"]["width"] == 0.5  # the student's untouched
