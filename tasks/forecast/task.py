"""Forecasting T and RH on the Jena climate data (Homework 2, Ex 1), as a harness task."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from harness.core import stats
from harness.core.config import Field, in_range, one_of
from harness.core.constraints import SECTION_SCHEMA
from harness.core.errors import HarnessError, ModelError
from harness.core.task import Context, Limit, Measurement, TaskBase, Trained, size_floor
from harness.toolkit import datasets
from harness.toolkit.measure.interpreter import Runner, weight_sparsity
from harness.toolkit.measure.latency import inference_ms
from harness.toolkit.train import fit
from tasks.forecast import data as jena
from tasks.forecast import models, monthly, profiles, windows
from tasks.forecast.user_files import UserFiles

DATA_SCHEMA = {
    "duplicates": Field(str, default="keep", check=one_of("keep", "drop"),
                        doc="keep: rows as they come (the course); drop: first row of each duplicated timestamp"),
}


def find_files(ctx: Context) -> list[Path]:
    """--jena files > ML4IOT_JENA (os.pathsep-separated) > <data dir>/jena_climate_2009_2016.csv.zip > download."""
    import os

    if ctx.options.get("jena"):
        return [Path(p) for p in ctx.options["jena"]]
    env = os.environ.get("ML4IOT_JENA")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    for name in (jena.OFFICIAL_NAME, "jena_climate_2009_2016.csv"):
        p = ctx.data_dir / name
        if p.is_file():
            return [p]
    target = datasets.cache_dir() / "downloads" / jena.OFFICIAL_NAME
    if not target.is_file():
        datasets.download(
            jena.OFFICIAL_URL, target, sha256=None, desc=jena.OFFICIAL_NAME,
            offline_hint=f"put {jena.OFFICIAL_NAME} in {ctx.data_dir} (or pass --data-dir / --jena FILE)",
        )
        _verify_official(target)
    return [target]


def _verify_official(path: Path) -> None:
    import hashlib
    import zipfile

    with zipfile.ZipFile(path) as zf:
        raw = zf.read(zf.namelist()[0])
    digest = hashlib.sha256(raw).hexdigest()
    if len(raw) != jena.OFFICIAL_CSV_BYTES or digest != jena.OFFICIAL_CSV_SHA256:
        path.unlink(missing_ok=True)
        raise HarnessError(f"{jena.OFFICIAL_URL}: downloaded CSV has sha256 {digest}, expected {jena.OFFICIAL_CSV_SHA256}")


_positive = in_range(0, lo_open=True)
CONSTRAINT_SCHEMA = {
    **SECTION_SCHEMA,
    "output_steps": Field(int, check=in_range(1, 48)),
    "input_steps": Field(int, default=6, check=in_range(1, 144)),
    "max_mae_t_degc": Field(float, check=_positive),
    "max_mae_rh_pct": Field(float, check=_positive),
    "max_size_bytes": Field(int, check=in_range(1)),
}


class ForecastTask(UserFiles, TaskBase):
    name = "forecast"
    title = "T/RH forecasting (Jena climate)"
    recipes_dir = Path(__file__).parent / "recipes"
    recipe_schema = {"data": Field(dict, default={}, schema=DATA_SCHEMA)}
    build_keys = ("input_steps", "output_steps")
    constraint_schema = CONSTRAINT_SCHEMA
    cli_options = (("--jena", {"nargs": "+", "metavar": "FILE",
                               "help": "Jena climate file(s), CSV or zip, joined in time order"}),
                   ("--cross-year", {"nargs": "+", "metavar": "FILE", "dest": "cross_year",
                                     "help": "also evaluate the shipped forecaster on these Jena files as a held-out year"}),
                   ("--profile", {"help": "forecasting evaluation profile: a name in tasks/forecast/profiles/ "
                                          "(course, full-season) or a TOML file (default: course)"}),
                   ("--unconstrained-reference", {"action": "store_true", "dest": "unconstrained_reference",
                                                  "help": "also train a large forecaster without a size limit on the same "
                                                          "inputs (cached) and report it beside the shipped file"}),)
    limits = [
        Limit("max_mae_t_degc", "mae_t_degc", "MAE(T), test split", "°C", "{:.4f}"),
        Limit("max_mae_rh_pct", "mae_rh_pct", "MAE(RH), test split", "%RH", "{:.4f}"),
        Limit("max_size_bytes", "size_bytes", "Size of the submitted file", "B", "{:,.0f}"),
    ]

    def check_model(self, model, where):
        return models.check(model, where)

    # -- data ---------------------------------------------------------------------------------
    def series(self, ctx: Context, recipe) -> jena.Series:
        files = find_files(ctx)
        key = ("jena", tuple(map(str, files)), recipe["data"]["duplicates"])
        if key not in ctx.cache:
            s = jena.load(files, duplicates=recipe["data"]["duplicates"])
            ctx.log(f"  data: {', '.join(f.path for f in s.sources)}: {s.describe()}")
            ctx.cache[key] = s
        return ctx.cache[key]

    def ensure_data(self, ctx, section) -> None:
        find_files(ctx)

    def check_recipe_data(self, ctx, section, recipe) -> None:
        if ctx.options.get("cross_year"):  # read before training: a bad file must not wait for the last step
            self.cross_year_series(ctx, recipe)

    def cross_year_series(self, ctx, recipe) -> jena.Series:
        files = [Path(f) for f in ctx.options["cross_year"]]
        key = ("cross_year", tuple(map(str, files)), recipe["data"]["duplicates"])
        if key not in ctx.cache:
            ctx.cache[key] = jena.load(files, duplicates=recipe["data"]["duplicates"])
        return ctx.cache[key]

    def profile(self, ctx) -> profiles.Profile:
        return profiles.load(ctx.options.get("profile") or "course")

    def split(self, ctx, section, recipe) -> tuple[windows.Windows, profiles.SplitInfo]:
        """Windows of every split under the evaluation profile (the course profile gives exactly Lab 3's windows)."""
        s = self.series(ctx, recipe)
        prof = self.profile(ctx)
        key = ("windows", id(s), str(prof.path), section["input_steps"], section["output_steps"])
        if key not in ctx.cache:
            ctx.cache[key] = profiles.split(s, prof, section["input_steps"], section["output_steps"])
        return ctx.cache[key]

    def windows(self, ctx, section, recipe) -> windows.Windows:
        return self.split(ctx, section, recipe)[0]

    def data_fingerprint(self, ctx, section, recipe) -> dict:
        s = self.series(ctx, recipe)
        prof = self.profile(ctx)
        return {
            "profile": {"name": prof.name, "sha256": hashlib.sha256(prof.path.read_bytes()).hexdigest(),
                        "description": prof.description},
            "files": [{"path": f.path, "sha256": f.sha256, "rows": f.rows} for f in s.sources],
            "rows": s.rows,
            "duplicates": s.duplicates,
            "duplicate_policy": s.duplicate_policy,
            "gaps": len(s.gaps),
            "gap_minutes": sum(m for _, m in s.gaps),
        }

    def data_note(self, fp: dict) -> str:
        prof = fp.get("profile", {})
        if prof.get("name") not in (None, "course"):
            return (f"evaluation profile '{prof['name']}' ({prof['description']}); {fp['rows']:,} rows read; windows never "
                    f"cross a split boundary or a gap ({fp['gaps']} gap(s), {fp['gap_minutes']} min missing)")
        dup = ("kept, rows used as they come (as the course did)" if fp["duplicate_policy"] == "keep"
               else "dropped (first row kept)")
        return (f"{fp['rows']:,} rows; {fp['duplicates']} duplicated timestamp(s) {dup}; {fp['gaps']} gap(s) "
                f"({fp['gap_minutes']} min missing) not filled: windows may span them, as in the course")

    def stats(self, w: windows.Windows, output_steps: int) -> models.Stats:
        pers = windows.mae_per_feature(windows.persistence(w.x["train"], output_steps), w.y["train"])
        return models.Stats(mean=[float(v) for v in w.mean], std=[float(v) for v in w.std],
                            delta_scale=[float(max(v, 1e-3)) for v in pers])

    # -- build ---------------------------------------------------------------------------------
    def train(self, ctx, section, recipe) -> Trained:
        w = self.windows(ctx, section, recipe)
        K = section["output_steps"]
        st = self.stats(w, K)
        bundle = models.build(recipe["model"], section["input_steps"], K, st)
        loss_name = recipe["train"]["loss"]
        if loss_name == "default":
            loss_name = "mae" if bundle.loss_weights else "mse"
        loss = _loss(loss_name, bundle.loss_weights)
        ctx.log(f"  train {recipe['model']['name']}: {bundle.model.count_params()} params, "
                f"{len(w.x['train'])} training windows, loss {loss_name}")
        trained, info = fit(bundle.model, (w.x["train"], w.y["train"], w.x["val"], w.y["val"]), recipe,
                            loss=loss, metrics=None, log=ctx.log, epoch_hook=ctx.epoch_hook)
        deployed = bundle.export(trained)
        info.update({"params_trained": int(bundle.model.count_params()), "params_deployed": int(deployed.count_params()),
                     "loss": loss_name})
        return Trained(model=deployed, calibration=w.x["train"], info=info)  # calibration: the first training windows

    # -- measure -------------------------------------------------------------------------------
    def measure(self, ctx, section, recipe, tflite, split="test", latency=True) -> Measurement:
        ctx.open_split(split)
        w = self.windows(ctx, section, recipe)
        K = section["output_steps"]
        runner = Runner(tflite, kernels=ctx.options.get("kernels") or "default")
        expected_in = (1, section["input_steps"], 2)
        if runner.input_shape != expected_in or runner.output_shape != (1, K, 2):
            raise ModelError(f"model I/O is {runner.input_shape} -> {runner.output_shape}, expected {expected_in} -> (1, {K}, 2)")
        x, y = w.x[split], w.y[split]
        pred = runner.predict(self.model_inputs(ctx, section, recipe, x))
        mae = windows.mae_per_feature(pred, y)
        pers_pred = windows.persistence(x, K)
        pers = windows.mae_per_feature(pers_pred, y)
        skill = 1 - mae / pers
        times = w.times[split]  # first target row of each window
        days = np.asarray(times, dtype="datetime64[D]")  # bootstrap blocks: windows of one day are correlated
        per_window = np.abs(pred.astype(np.float64) - y).mean(axis=1)
        lo, hi = stats.block_bootstrap_mae(per_window, days)
        p_lo, p_hi = stats.block_bootstrap_mae(np.abs(pers_pred.astype(np.float64) - y).mean(axis=1), days)
        sparsity = weight_sparsity(tflite)
        lat = inference_ms(runner, self.model_inputs(ctx, section, recipe, x[:1])) if latency else None
        n_days = len(np.unique(days))
        rows = [
            ("Skill vs persistence (1 − MAE/MAE_persistence)", f"T {skill[0]:+.1%}, RH {skill[1]:+.1%}"),
            (f"{split.capitalize()} windows", f"{len(pred):,} (rows {w.bounds[split][0]:,}–{w.bounds[split][1] - 1:,}), "
             f"{n_days} days; 95 % intervals: block bootstrap over days, 2,000 resamples"),
            ("Weight sparsity in the file", f"{sparsity['all']:.1%}"),
        ]
        if lat:
            rows.append(("Inference latency (info, no limit)", f"median {lat['total_median_ms'] * 1e3:.1f} µs, min {lat['total_min_ms'] * 1e3:.1f} µs over {lat['n']} runs"))
        method = "block bootstrap over days (2,000 resamples, percentile)"
        rows.insert(0, ("Evaluation profile", profiles.describe(self.profile(ctx), self.split(ctx, section, recipe)[1])))
        if split == "test" and ctx.options.get("cross_year"):
            rows.append(self.held_out_year(ctx, section, recipe, runner))
        baselines = {"Persistence (repeat the last value)": {"mae_t_degc": float(pers[0]), "mae_rh_pct": float(pers[1])}}
        references = ()
        if split == "test" and ctx.options.get("unconstrained_reference"):
            from tasks.forecast import reference

            baselines[reference.NAME] = reference.mae(w, K, split, ctx.log)
            references = (reference.NAME,)
        sections, files = [], {}
        by_month = monthly.by_month(pred, pers_pred, y, times)
        png = f"error-by-month-{split}.png"
        files[png] = monthly.png(by_month, section, f"MAE by month, {split} split, K = {K}")
        sections.append((f"Error by month ({split} split, shipped artifact vs persistence)",
                         monthly.markdown(by_month) + f"\n\n![MAE by month]({self.name}/{png})"))
        return Measurement(
            sections=sections,
            files=files,
            metrics={"mae_t_degc": float(mae[0]), "mae_rh_pct": float(mae[1])},
            rows=rows,
            intervals={"mae_t_degc": (float(lo[0]), float(hi[0])), "mae_rh_pct": (float(lo[1]), float(hi[1]))},
            interval_method={"mae_t_degc": method, "mae_rh_pct": method},
            baselines=baselines,
            references=references,
            details={
                "split": split,
                "output_steps": K,
                "persistence_mae": {"t_degc": float(pers[0]), "rh_pct": float(pers[1])},
                "persistence_interval": {"t_degc": [float(p_lo[0]), float(p_hi[0])], "rh_pct": [float(p_lo[1]), float(p_hi[1])]},
                "skill": {"t": float(skill[0]), "rh": float(skill[1])},
                "windows": int(len(pred)),
                "days": n_days,
                "split_rows": {k: list(v) for k, v in w.bounds.items()},
                "train_mean": [float(v) for v in w.mean],
                "train_std": [float(v) for v in w.std],
                "weight_sparsity": sparsity,
                "inference_latency": lat,
                "runtime": runner.runtime,
            },
        )

    def held_out_year(self, ctx, section, recipe, runner) -> tuple[str, str]:
        """The shipped file on every window of other files (another year): windows never cross a gap there."""
        files = [Path(f) for f in ctx.options["cross_year"]]
        s = self.cross_year_series(ctx, recipe)
        K, n_in = section["output_steps"], section["input_steps"]
        xs, ys = [], []
        for a, b in profiles.segments(s.times, 0, len(s.values)):
            x, y = windows.make_windows(s.values[a:b], n_in, K)
            xs.append(x)
            ys.append(y)
        x, y = np.concatenate(xs), np.concatenate(ys)
        mae = windows.mae_per_feature(runner.predict(self.model_inputs(ctx, section, recipe, x)), y)
        pers = windows.mae_per_feature(windows.persistence(x, K), y)
        names = ", ".join(f.name for f in files)
        return (f"Held-out year ({names}, {len(x):,} windows, not used for training or selection)",
                f"MAE(T) {mae[0]:.4f} °C, MAE(RH) {mae[1]:.4f} %RH; persistence {pers[0]:.4f} °C, {pers[1]:.4f} %RH; "
                f"under this version's limits: {'PASS' if mae[0] < section['max_mae_t_degc'] and mae[1] < section['max_mae_rh_pct'] else 'FAIL'}")

    def size_floor_bytes(self, ctx, section, recipe) -> int:
        w = self.windows(ctx, section, recipe)
        bundle = models.build(recipe["model"], section["input_steps"], section["output_steps"],
                              self.stats(w, section["output_steps"]))
        return size_floor(int(bundle.export(bundle.model).count_params()), recipe)

    def sidecar(self, ctx, section, recipe) -> dict:
        prof = self.profile(ctx)
        gaps = "never cross a gap in the data" if prof.kind == "dates" else "may span gaps in the data, as in the course"
        return {
            "task": "forecast",
            "input": {"shape": [1, section["input_steps"], 2], "dtype": "float32", "features": ["T (degC)", "rh (%)"],
                      "units": ["°C", "%RH"], "order": "oldest first, 10-minute steps"},
            "output": {"shape": [1, section["output_steps"], 2], "dtype": "float32", "units": ["°C", "%RH"]},
            "normalization": "inside the model",
            "evaluation": f"evaluation profile '{prof.name}' ({prof.description}); windows of input_steps + "
                          f"output_steps rows, stride 1, built inside the test split ({gaps}); MAE per feature over "
                          "all windows and steps",
        }


def _loss(name: str, weights):
    from harness.toolkit.tfsetup import tf

    t = tf()
    w = t.constant(weights or [1.0, 1.0], dtype=t.float32)
    if name == "mae":
        return lambda y, p: t.reduce_mean(t.abs(y - p) * w)
    if name == "mse":
        return lambda y, p: t.reduce_mean(t.square(y - p) * w)
    raise HarnessError(f"train.loss: {name!r} is not a forecasting loss (use mae or mse)")


TASK = ForecastTask()
