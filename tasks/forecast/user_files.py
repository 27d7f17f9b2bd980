"""How the forecasting task reads files it did not build: the course's input conventions (`check` options) and
`grade`'s file names and args files. The harness's own files take °C/%RH; the course's Lab 3 normalized outside."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.core.errors import HarnessError


class UserFiles:
    """Mixed into the forecasting task (it provides windows())."""

    # How a user's own file takes its inputs (`check`/`grade`): the course's Lab 3 normalized them outside the model.
    check_options = (
        ("--inputs", {"choices": ("physical", "normalized"), "help": "forecast: the file takes °C/%RH (physical, "
                      "default) or (x - mean) / (std + 1e-6) as the course's Lab 3 pipeline fed it (normalized)"}),
        ("--norm-stats", {"dest": "norm_stats", "help": "forecast, with --inputs normalized: 'train' (this profile's "
                          "train split, default), 'lab' (the lab's hard-coded 2009-2016 statistics) or "
                          "'MEAN_T,STD_T,MEAN_RH,STD_RH'"}),
    )
    LAB_STATS = (9.107597, 8.654227, 75.904076, 16.557089)  # Lab_03/th_inference.py of the course

    submission_names = ("th", "forecast")  # the course named the forecaster's file <group>_th_<version>.tflite

    def setup_for_artifact(self, ctx, section, recipe):
        profile = f"evaluation profile {ctx.options.get('profile') or 'course'}"
        if (ctx.options.get("inputs") or "physical") == "physical":
            if ctx.options.get("norm_stats"):
                raise HarnessError("--norm-stats applies only with --inputs normalized")
            return section, recipe, ["inputs: the model takes [1, 6, 2] float32 in °C and %RH and returns [1, K, 2] in the "
                                     f"same units (normalization inside the model, as the harness's own files); {profile}"]
        mean, std = self.input_stats(ctx, section, recipe)
        return section, recipe, [
            "inputs: normalized outside the model as the course's Lab 3 pipeline did, (x - mean) / (std + 1e-6) with "
            f"{self._stats_source(ctx)} statistics (T {mean[0]:.4f} ± {std[0]:.4f} °C, RH {mean[1]:.4f} ± {std[1]:.4f} %RH); "
            f"outputs in °C and %RH; {profile}"]

    def _stats_source(self, ctx) -> str:
        return {"train": "this profile's train-split", "lab": "the lab's hard-coded (2009-2016)"}.get(
            ctx.options.get("norm_stats") or "train", "the given")

    def input_stats(self, ctx, section, recipe) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) the file's inputs were normalized with, per feature (T, RH)."""
        how = ctx.options.get("norm_stats") or "train"
        if how == "train":
            w = self.windows(ctx, section, recipe)
            return np.asarray(w.mean, np.float64), np.asarray(w.std, np.float64)
        if how == "lab":
            values = self.LAB_STATS
        else:
            try:
                values = tuple(float(v) for v in how.split(","))
            except ValueError:
                values = ()
            if len(values) != 4 or not all(np.isfinite(values)) or values[1] <= 0 or values[3] <= 0:
                raise HarnessError(f"--norm-stats {how!r}: expected train, lab or MEAN_T,STD_T,MEAN_RH,STD_RH (std > 0)")
        return np.array([values[0], values[2]]), np.array([values[1], values[3]])

    def model_inputs(self, ctx, section, recipe, x: np.ndarray) -> np.ndarray:
        """Windows in °C/%RH -> what the file takes (unchanged, or normalized as the course's lab did)."""
        if (ctx.options.get("inputs") or "physical") == "physical":
            return x
        mean, std = self.input_stats(ctx, section, recipe)
        return ((x - mean) / (std + 1e-6)).astype(np.float32)

    def submission_options(self, folder, model):
        """`grade`: an optional <stem>.json or args.json beside the file, e.g. {"inputs": "normalized", "norm_stats": "lab"}."""
        import json

        from harness.toolkit.package import stem_of

        for name in (f"{stem_of(model.name)}.json", "args.json"):
            path = Path(folder) / name
            if path.is_file():
                try:
                    data = json.loads(path.read_text())
                except (OSError, ValueError) as e:
                    raise HarnessError(f"{path}: not a JSON args file ({e})") from None
                unknown = set(data) - {"inputs", "norm_stats"} if isinstance(data, dict) else {"(not an object)"}
                if unknown:
                    raise HarnessError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (known: inputs, norm_stats)")
                return dict(data)
        return {}
