"""Constraint-driven search: space files, real trials, resume, best recipe reproduction, shared PostgreSQL study."""
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from harness.core import recipes
from harness.core.errors import HarnessError
from harness.core.task import Context, get
from harness.pipeline import run, search
from tests.conftest import write_jena_slice

ROOT = Path(__file__).resolve().parents[1]
SPACE = """
[[param]]
key = "model.name"
choices = ["delta_linear"]
[[param]]
key = "quantize.mode"
choices = ["none", "float16"]
[[param]]
key = "train.loss"
choices = ["mae", "mse"]
when = { "quantize.mode" = ["none"] }
[[param]]
key = "train.epochs"
int = [1, 2]
"""


@pytest.fixture(scope="module")
def jena_slice(tmp_path_factory, jena_2017b):
    """One for the module: its search tests may share builds."""
    return write_jena_slice(tmp_path_factory.mktemp("jena"), jena_2017b)


@pytest.fixture()
def space(tmp_path):
    p = tmp_path / "space.toml"
    p.write_text(SPACE)
    return p


def test_shipped_spaces_parse_and_fit_every_versions_recipe():
    from harness.core import constraints

    for name in ("forecast", "kws"):
        task, space = get(name), search.load_space(ROOT / "tasks" / name / "search_space.toml")
        assert len(space) >= 8
        for suite in constraints.suites():
            for v in constraints.versions(suite):
                if name in constraints.load(suite, v).tasks:
                    base = recipes.default_path(task, suite, v)
                    search.check_keys(space, lambda ov: recipes.load(base, task, ov), f"{suite}/{v}")


@pytest.mark.parametrize("text,message", [
    ("[[param]]\nkey = 'a.b'\n", "needs exactly one of choices, int, float"),
    ("[[param]]\nkey = 'a.b'\nint = [3, 1]\n", "must be [low, high]"),
    ("[[param]]\nkey = 'a.b'\nint = [2, 2]\n", "must be [low, high]"),
    ("[[param]]\nkey = 'a.b'\nchoices = [1]\nrange = 2\n", "unknown key 'param[0].range'"),
    ("x = 1\n", "expected a list of [[param]] tables"),
    ("[[param]]\nkey = 'a.b'\nchoices = [1]\nwhen = { 'model.nme' = ['mlp'] }\n", "names 'model.nme', which no earlier"),
])
def test_bad_space_files(tmp_path, text, message):
    p = tmp_path / "s.toml"
    p.write_text(text)
    with pytest.raises(HarnessError, match=message.replace("[", r"\[").replace("]", r"\]")):
        search.load_space(p)


def test_a_space_no_trial_could_use_or_another_studys_space_is_refused_before_any_trial(tmp_path, jena_slice, space):
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice]}, log=lambda m: None)
    bad = tmp_path / "bad.toml"
    bad.write_text(SPACE + "[[param]]\nkey = 'train.epochz'\nint = [1, 3]\n")
    cfg = search.SearchConfig(suite="ml4iot-2022", version="a", task="forecast", trials=1, space=bad,
                              out_dir=tmp_path / "results")
    n = len(search.load_space(bad)) - 1
    with pytest.raises(HarnessError, match=rf"bad.toml: param\[{n}\] \(train.epochz\) fits no value .*unknown key"):
        search.search(ctx, cfg)
    import optuna

    from harness.core import constraints

    journal = str(tmp_path / "results" / "ml4iot-2022" / "search-a-forecast.journal")
    (tmp_path / "results" / "ml4iot-2022").mkdir(parents=True)
    study = optuna.create_study(storage=search.open_storage(journal), study_name="ml4iot-2022-a-forecast",
                                directions=[d for _, d in get("forecast").objectives(
                                    constraints.load("ml4iot-2022", "a").task("forecast"))])
    study.set_user_attr("space_sha256", "made-with-another-space")
    with pytest.raises(HarnessError, match="was made with another search space than"):
        search.search(ctx, search.SearchConfig(**{**cfg.__dict__, "space": space}))
    assert len(optuna.load_study(study_name="ml4iot-2022-a-forecast",
                                 storage=search.open_storage(journal)).trials) == 0



def test_a_fixed_value_for_a_searched_key_is_refused_before_any_trial(tmp_path, jena_slice, space):
    """A trial's value would replace the --set one: the user would believe the key held fixed."""
    key = search.load_space(space)[0].key
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice]}, log=lambda m: None)
    cfg = search.SearchConfig(suite="ml4iot-2022", version="a", task="forecast", trials=1, space=space,
                              out_dir=tmp_path / "results", extra_overrides=("train.batch_size=128", f"{key} = 1"))
    with pytest.raises(HarnessError, match=rf"^--set {key} = 1: .*space.toml searches the key '{key}'; "):
        search.search(ctx, cfg)
    assert not (tmp_path / "results").exists()

def test_choosing_the_model_resets_the_base_model_table():
    task = get("kws")
    base = task.recipes_dir / "ml4iot-2022-a.toml"
    assert "residual" in recipes.load(base, task)["model"]
    ov = search.overrides_of({"model.name": "ds_cnn", "model.width": 0.5})
    r = recipes.load(base, task, ov)
    assert r["model"] == {"name": "ds_cnn", "width": 0.5}
    assert ov == ['model={ name = "ds_cnn" }', "model.width=0.5"]


def test_constraint_values_are_feasible_only_below_zero():
    checks = [{"limit": 0.3, "op": "<"}, {"limit": 90.0, "op": ">"}, {"limit": None, "op": "<"}]

    def seed(*measured):
        return {"checks": [dict(c, measured=m) for c, m in zip(checks, measured)]}

    rep = {"checks": checks, "seeds": [seed(0.2, 91.0, 1.0), seed(0.25, 90.0, 1.0)]}
    vals = search.constraint_values(rep)
    assert vals[0] < 0 and vals[1] > 0 and len(vals) == 2  # the worst seed counts: 90.0 is not > 90.0
    rep = {"checks": checks, "seeds": [seed(float("nan"), 95.0, 1.0)]}
    assert search.constraint_values(rep)[0] > 0


def test_search_runs_real_trials_resumes_and_its_best_recipe_reproduces(tmp_path, jena_2020, space):
    ctx = Context(data_dir=tmp_path, options={"jena": [jena_2020]}, log=lambda m: None)
    cfg = search.SearchConfig(suite="ml4iot-2022", version="a", task="forecast", trials=3, space=space,
                              out_dir=tmp_path / "results", extra_overrides=("train.batch_size=128",))
    res = search.search(ctx, cfg)
    assert res["complete"] + 0 >= 1
    folder = tmp_path / "results" / "ml4iot-2022"
    assert (folder / "search-a-forecast.md").read_text().startswith("# Search ml4iot-2022-a-forecast")
    assert (folder / "search-a-forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # resume: the same command continues the same study
    res2 = search.search(ctx, search.SearchConfig(**{**cfg.__dict__, "trials": 1}))
    assert res2["complete"] == res["complete"] + 1
    assert res2["best"] is not None, "delta_linear passes 2022 a on the 2020 data"
    best_file = folder / "search-a-forecast.best.toml"
    task = get("forecast")
    recipe = recipes.load(best_file, task)
    assert recipe["train"]["batch_size"] == 128
    from harness.core import constraints

    out = run.run_task(ctx, constraints.load("ml4iot-2022", "a"), "forecast", recipe_path=best_file,
                       use_cache=False, seeds=2, split="val")
    import optuna

    study = optuna.load_study(study_name="ml4iot-2022-a-forecast",
                              storage=search.open_storage(str(folder / "search-a-forecast.journal")))
    trial = study.trials[res2["best"]["number"]]
    assert [s["tflite_sha256"] for s in out.report["seeds"]] == trial.user_attrs["tflite_sha256"]
    assert search.mean_metrics(out.report) == pytest.approx(trial.user_attrs["metrics"])
    assert "test split (read once, after the choice)" in (folder / "search-a-forecast.md").read_text()


def test_the_search_never_reads_the_test_split(tmp_path, jena_slice, space, monkeypatch, opened_splits):
    """Scrambling the test split's targets must not change which trial is chosen, nor any trial's figures."""
    from tasks.forecast.task import TASK

    def run_search(out, scramble):
        ctx = Context(data_dir=tmp_path, options={"jena": [jena_slice]}, log=lambda m: None)
        if scramble:
            real_windows = type(TASK).windows

            def scrambled(self, ctx, section, recipe):
                w = real_windows(self, ctx, section, recipe)
                rng = np.random.default_rng(0)
                w.y["test"] = rng.permutation(w.y["test"]) + 5.0
                return w

            monkeypatch.setattr(type(TASK), "windows", scrambled)
        cfg = search.SearchConfig(suite="ml4iot-2022", version="a", task="forecast", trials=3, space=space, seed=3,
                                  out_dir=out, extra_overrides=("train.batch_size=128",))
        res = search.search(ctx, cfg)
        monkeypatch.undo()
        study = optuna.load_study(study_name="ml4iot-2022-a-forecast",
                                  storage=search.open_storage(str(out / "ml4iot-2022" / "search-a-forecast.journal")))
        return res, study

    import numpy as np
    import optuna

    res_a, study_a = run_search(tmp_path / "a", scramble=False)
    assert ("test", True) not in opened_splits and ("val", True) in opened_splits  # trials read validation only
    res_b, study_b = run_search(tmp_path / "b", scramble=True)
    assert [t.params for t in study_a.trials] == [t.params for t in study_b.trials]
    assert [t.values for t in study_a.trials] == [t.values for t in study_b.trials]
    assert (res_a["best"] or {}).get("number") == (res_b["best"] or {}).get("number")


def test_a_sealed_test_split_cannot_be_opened():
    from harness.core.task import SealedSplitError

    ctx = Context(data_dir=ROOT, log=lambda m: None, sealed_test=True)
    ctx.open_split("val")
    with pytest.raises(SealedSplitError):
        ctx.open_split("test")


def test_interrupted_trial_is_failed_and_queued_again(tmp_path):
    import optuna
    from optuna.trial import TrialState

    storage = search.open_storage(str(tmp_path / "s.journal"))
    study = optuna.create_study(storage=storage, study_name="s", directions=["minimize", "minimize"])
    t = study.ask()
    t.suggest_float("x", 0, 1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    t.set_user_attr("worker", f"{search.socket.gethostname()}:{dead.pid}")
    assert search.recover_interrupted(study, lambda m: None) == 1
    states = [tr.state for tr in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]
    assert study.get_trials()[1].params == {} and study.get_trials()[1].system_attrs["fixed_params"] == t.params
    assert search.recover_interrupted(study, lambda m: None) == 0  # a live or finished worker is left alone


@pytest.mark.postgres
def test_two_workers_share_one_study_on_postgresql(tmp_path, jena_slice, space):
    url = os.environ.get("ML4IOT_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must provide ML4IOT_TEST_POSTGRES_URL (.ci/services starts PostgreSQL)")
        pytest.skip("no PostgreSQL server (set ML4IOT_TEST_POSTGRES_URL)")
    study = f"test-{uuid.uuid4().hex[:10]}"
    if os.environ.get("ML4IOT_TEST_FRESH_DB"):  # reproduce CI's first run: no Optuna tables yet
        subprocess.run(["psql", url, "-qc", "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"], check=True)
    cmd = [sys.executable, "-m", "harness", "search", "--suite", "ml4iot-2022", "--version", "a", "--task", "forecast",
           "--trials", "2", "--space", str(space), "--storage", url, "--study", study, "--jena", str(jena_slice),
           "--set", "train.batch_size=128", "--out", str(tmp_path / "results")]
    env = {**os.environ, "ML4IOT_CACHE_DIR": str(tmp_path / "cache")}
    procs = [subprocess.Popen(cmd + ["--seed", str(i)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    import optuna

    try:
        s = optuna.load_study(study_name=study, storage=search.open_storage(url))
        trials = s.get_trials(deepcopy=False)
        assert len(trials) == 4  # 2 workers x 2 trials: nothing lost, nothing duplicated
        assert sorted(t.number for t in trials) == [0, 1, 2, 3]
        assert all(t.state.is_finished() for t in trials)
        workers = {t.user_attrs["worker"] for t in trials}
        assert len(workers) == 2
        for out, _ in outs:
            assert out.count("  trial ") == 2
    finally:
        optuna.delete_study(study_name=study, storage=search.open_storage(url))


def test_a_trials_metrics_are_the_mean_over_its_seeds():
    rep = {"seeds": [{"metrics": {"mae": 0.2, "size_bytes": 1000.0}}, {"metrics": {"mae": 0.4, "size_bytes": 1000.0}}]}
    assert search.mean_metrics(rep) == pytest.approx({"mae": 0.3, "size_bytes": 1000.0})
    rep["seeds"].append({"seed": 3, "metrics": {"size_bytes": 1000.0}})  # never a mean over fewer seeds
    with pytest.raises(HarnessError, match="^trial seed 3: mae not measured"):
        search.mean_metrics(rep)


def test_the_chosen_trial_passes_every_limit_and_is_best_on_the_first_objective():
    objs = [("accuracy", "maximize"), ("size_bytes", "minimize")]
    rows = [{"number": 0, "values": [99.0, 100.0], "passed": False},
            {"number": 1, "values": [93.0, 900.0], "passed": True},
            {"number": 2, "values": [95.0, 800.0], "passed": True},
            {"number": 3, "values": [95.0, 700.0], "passed": True}]
    assert search.choose(rows, objs)["number"] == 3  # the best passing accuracy; on a tie, the smaller file
    assert search.choose([r for r in rows if not r["passed"]], objs) is None


def test_the_pareto_table_keeps_exactly_the_configurations_nothing_beats():
    objs = [("accuracy", "maximize"), ("size_bytes", "minimize")]
    values = [[95.0, 800.0], [93.0, 500.0], [92.0, 900.0], [95.0, 800.0], [96.0, 1000.0]]
    rows = [{"number": n, "values": v} for n, v in enumerate(values)]
    # trial 2 is beaten on both objectives; two equal trials do not beat each other
    assert [r["number"] for r in search.pareto(rows, objs)] == [0, 1, 3, 4]


class _Trial:
    number = 0

    def __init__(self):
        self.user_attrs = {}

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


class _Study:
    def __init__(self, curves):
        self.curves = curves

    def get_trials(self, deepcopy=False, states=()):
        from types import SimpleNamespace

        return [SimpleNamespace(user_attrs={"val_curve": c}) for c in self.curves]


def test_a_trial_is_stopped_early_only_when_far_worse_than_the_median_of_four_finished_trials():
    import optuna

    from types import SimpleNamespace

    task = SimpleNamespace(hopeless=lambda section, logs: None)

    def finished(n, key, value):
        curves = []
        for _ in range(n):
            t = _Trial()
            hook = search._early_stop_hook(_Study([]), t, task, {}, 2, lambda m: None)
            for epoch in range(3):
                hook(epoch, {key: value, "loss": 1.0})
            curves.append(t.user_attrs["val_curve"])
        return _Study(curves)

    def stopped_at(study, key, values):
        hook = search._early_stop_hook(study, _Trial(), task, {}, 2, lambda m: None)
        for epoch, value in enumerate(values):
            try:
                hook(epoch, {key: value})
            except optuna.TrialPruned:
                return epoch
        return None

    losses = finished(4, "val_loss", 1.0)
    assert stopped_at(losses, "val_loss", [5.0, 5.0, 5.0]) == 1  # judged once the 2 warm-up epochs are over
    assert stopped_at(losses, "val_loss", [0.5, 0.5, 0.5]) is None  # a lower loss runs on
    assert stopped_at(losses, "val_loss", [1.2, 1.2, 1.2]) is None  # within a quarter of the median
    assert stopped_at(finished(3, "val_loss", 1.0), "val_loss", [5.0, 5.0, 5.0]) is None  # too few to compare
    accuracy = finished(4, "val_accuracy", 0.9)
    assert stopped_at(accuracy, "val_accuracy", [0.5, 0.5, 0.5]) == 1
    assert stopped_at(accuracy, "val_accuracy", [0.95, 0.95, 0.95]) is None


def test_a_condition_holds_only_when_every_named_key_has_one_of_its_values():
    p = search.Param("model.width", "choices", (8, 16), None, False, {"model.name": ["ds_cnn"], "quantize.mode": ["int8"]})
    assert p.active({"model.name": "ds_cnn", "quantize.mode": "int8"})
    assert not p.active({"model.name": "ds_cnn", "quantize.mode": "none"})
    assert not p.active({"model.name": "mlp", "quantize.mode": "int8"})


def test_a_trial_samples_each_range_with_its_step_and_scale(tmp_path):
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution

    p = tmp_path / "s.toml"
    p.write_text("[[param]]\nkey = 'train.epochs'\nint = [2, 10]\nstep = 2\n"
                 "[[param]]\nkey = 'train.learning_rate'\nfloat = [1e-4, 1e-1]\nlog = true\n"
                 "[[param]]\nkey = 'model.width'\nfloat = [0.25, 1.0]\nstep = 0.25\n")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    chosen = search.suggest(trial, search.load_space(p))
    assert trial.distributions == {"train.epochs": IntDistribution(2, 10, step=2),
                                   "train.learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
                                   "model.width": FloatDistribution(0.25, 1.0, step=0.25)}
    assert chosen["train.epochs"] % 2 == 0
