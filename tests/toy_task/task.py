"""A third task that lives only under tests/: a toy linear regression, to prove the harness/task seam.

It declares everything task-specific (constraint table, limits, build keys, data, training, measurement) and
uses the harness's shared pieces (training loop, intervals, interpreter); the harness is not changed for it.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from harness.core import folds, stats
from harness.core.config import Field, in_range
from harness.core.constraints import SECTION_SCHEMA
from harness.core.task import Limit, Measurement, TaskBase, Trained, size_floor
from harness.toolkit.measure.interpreter import Runner
from harness.toolkit.train import fit

WEIGHTS = np.array([0.5, -1.0, 2.0, 0.25], np.float32)


class ToyTask(TaskBase):
    name = "toy"
    title = "Toy regression (tests only)"
    recipes_dir = Path(__file__).parent / "recipes"
    recipe_schema = {}
    build_keys = ("samples",)
    constraint_schema = {**SECTION_SCHEMA, "samples": Field(int, check=in_range(30)),
                         "max_mae": Field(float, check=in_range(0, lo_open=True)), "max_size_bytes": Field(int)}
    limits = [Limit("max_mae", "mae", "MAE, test split", "units", "{:.4f}"),
              Limit("max_size_bytes", "size_bytes", "Size of the submitted file", "B", "{:,.0f}")]

    def check_model(self, model, where):
        return {"name": "dense", "width": 8, **model}

    supports_folds = True

    def data(self, section, split, fold=None):
        """Fixed synthetic data (its own seed): 60/20/20 % of `samples` rows, y = x·w + noise.

        With a fold (i, k), train, val and held-out are re-drawn from the first 80 % (groups of 5 consecutive rows)."""
        rng = np.random.default_rng(7)
        n = section["samples"]
        x = rng.normal(size=(n, 4)).astype(np.float32)
        y = (x @ WEIGHTS + 0.1 * rng.normal(size=n)).astype(np.float32)[:, None]
        a, b = int(0.6 * n), int(0.8 * n)
        rows = {"train": np.arange(a), "val": np.arange(a, b), "test": np.arange(b, n)}
        if fold and split != "test":
            parts = folds.fold_parts(range(b), lambda i: f"rows {i // 5}", *fold)
            rows.update(zip(("train", "val", "held-out"), map(np.array, parts)))
        return x[rows[split]], y[rows[split]]

    def data_fingerprint(self, ctx, section, recipe):
        return {"synthetic": "toy linear", "samples": section["samples"], "fold": ctx.fold}

    def train(self, ctx, section, recipe):
        from harness.toolkit.tfsetup import keras

        k = keras()
        model = k.Sequential([k.Input((4,)), k.layers.Dense(recipe["model"]["width"], activation="relu"), k.layers.Dense(1)])
        x, y = self.data(section, "train", ctx.fold)
        xv, yv = self.data(section, "val", ctx.fold)
        trained, info = fit(model, (x, y, xv, yv), recipe, loss="mae", metrics=None, log=ctx.log, epoch_hook=ctx.epoch_hook)
        return Trained(model=trained, calibration=x, info=info)

    def submission_options(self, folder, model):
        """`grade` tests: a team folder may ask the measurement to crash or hang, as a broken model can."""
        how = Path(folder, "misbehave.txt")
        return {"toy_misbehave": how.read_text().strip()} if how.is_file() else {}

    def measure(self, ctx, section, recipe, tflite, split="test", latency=True):
        how = ctx.options.get("toy_misbehave")
        if how == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        if how == "hang":
            time.sleep(3600)
        ctx.open_split(split)
        x, y = self.data(section, split, ctx.fold)
        pred = Runner(tflite).predict(x)
        err = np.abs(pred - y)
        lo, hi = stats.block_bootstrap_mae(err, np.arange(len(err)))
        mean_pred = float(self.data(section, "train", ctx.fold)[1].mean())
        return Measurement(metrics={"mae": float(err.mean())}, rows=[("Samples", str(len(y)))], details={"n": len(y)},
                           intervals={"mae": (float(lo[0]), float(hi[0]))}, interval_method={"mae": "bootstrap"},
                           baselines={"Train mean": {"mae": float(np.abs(mean_pred - y).mean())}})

    def sidecar(self, ctx, section, recipe):
        return {"task": "toy", "input": {"shape": [1, 4]}, "output": {"shape": [1, 1]}}

    def size_floor_bytes(self, ctx, section, recipe):
        return size_floor(4 * recipe["model"]["width"] + recipe["model"]["width"] + 1, recipe)


TASK = ToyTask()
