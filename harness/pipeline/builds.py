"""Builds: one trained and converted model per (recipe, seed), kept in a verified cache, built in parallel.

The cache key covers only what shapes the .tflite (the task's build keys of the constraint section, the recipe
without packaging, the data fingerprint, the code, library versions and numeric settings); every entry
carries the sha256 of its model and is checked on reuse.
"""
from __future__ import annotations

import gc
import hashlib
import json
import shutil
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.paths import ROOT
from harness.core.recipes import Recipe
from harness.core.task import Build, Context, Trained
from harness.core.task import get as get_task
from harness.pipeline import workers
from harness.toolkit import atomic, convert, datasets, hostinfo, package
from harness.toolkit.tfsetup import keras, quiet_stderr, seed_everything


def code_fingerprint(task_name: str) -> str:
    """Hash of the code a build depends on: a code change invalidates cached builds."""
    import importlib

    h = hashlib.sha256()
    task_dir = Path(importlib.import_module(type(get_task(task_name)).__module__).__file__).parent
    for folder in (ROOT / "harness", task_dir):
        for p in sorted(folder.rglob("*.py")):
            h.update(str(p.relative_to(folder.parent)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def seeds_of(recipe: Recipe, n: int) -> list[int]:
    """The recipe's seed and the n - 1 that follow it: fixed by the recipe, never picked after the fact."""
    if n < 1:
        raise HarnessError(f"--seeds must be >= 1 (got {n})")
    return [recipe["seed"] + i for i in range(n)]


def with_seed(recipe: Recipe, seed: int) -> Recipe:
    data = dict(recipe.data)
    data["seed"] = int(seed)
    return Recipe(path=recipe.path, data=data)


def build_key(task, section: dict, recipe: Recipe, data_fp: dict) -> str:
    """Only what shapes the .tflite: limits and the submitted format (packaging) do not, so versions that
    differ only there share one build."""
    payload = {"task": task.name, "section": {k: section[k] for k in task.build_keys if k in section},
               "recipe": {k: v for k, v in recipe.data.items() if k not in ("package", "description")}, "data": data_fp,
               "code": code_fingerprint(task.name), "versions": hostinfo.versions(), "pins": hostinfo.numeric_pins()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def fresh_session(seed: int) -> None:
    """Reset Keras' auto-numbered names (they are written into the .tflite) and all seeds."""
    keras().backend.clear_session()
    seed_everything(seed)


# -- the build cache ------------------------------------------------------------------------------

def _cache_folder(key: str) -> Path:
    return datasets.cache_dir() / "builds" / key


def cached_keys() -> set[str]:
    """Keys of the build cache's complete entries (a build.json marks one)."""
    folder = datasets.cache_dir() / "builds"
    return {p.parent.name for p in folder.glob("*/build.json")} if folder.is_dir() else set()


def load_cached(key: str, log) -> Build | None:
    """A cached build, or None. Every entry carries the sha256 of its model; a damaged one is reported and dropped."""
    folder = _cache_folder(key)
    model_path, info_path = folder / "model.tflite", folder / "build.json"
    if not info_path.is_file():
        return None
    try:
        info = json.loads(info_path.read_text())
        blob = model_path.read_bytes()
        expected = _checked_record(info)["tflite_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        log(f"  cache entry {folder} is unreadable ({type(e).__name__}); rebuilding")
        shutil.rmtree(folder, ignore_errors=True)
        return None
    if hashlib.sha256(blob).hexdigest() != expected:
        log(f"  cache entry {model_path} is damaged (sha256 differs from its record); rebuilding")
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return Build(blob, info)


# The record's fields that the run reads back (beyond being copied into report.json): a record whose sha256 is right
# but whose fields have another shape would otherwise crash the run or the report long after the cache was trusted.
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_strings(v, n: int | None = None) -> bool:
    return isinstance(v, list) and (n is None or len(v) == n) and all(isinstance(x, str) for x in v)


def _is_build_host(v) -> bool:
    if v is None:
        return True
    cpu_id = (v.get("cpu_id") or {}) if isinstance(v, dict) else None
    return (isinstance(cpu_id, dict) and isinstance(cpu_id.get("cache_kib", {}), dict)
            and _is_strings(v.get("cpu_flags", [])))


_RECORD_FIELDS = {  # field: (required, check)
    "tflite_sha256": (True, lambda v: isinstance(v, str)),
    "built_on": (False, _is_build_host),  # the report's "Built on" line
    "selected_epoch": (False, lambda v: v is None or _is_int(v)),
    "report_rows": (False, lambda v: isinstance(v, list) and all(_is_strings(r, 2) for r in v)),  # (label, text)
    # a task's counted_size reads one format's size
    "sizes_without_front_end": (False, lambda v: isinstance(v, dict) and v.keys() == package.SUFFIX.keys()
                                and all(_is_int(n) for n in v.values())),
}


def _checked_record(info) -> dict:
    """The record, if every field the run reads has its type and shape; else ValueError naming the field."""
    if not isinstance(info, dict):
        raise ValueError("the record is not a JSON object")
    for name, (required, ok) in _RECORD_FIELDS.items():
        if (name in info and not ok(info[name])) or (required and name not in info):
            raise ValueError(f"field {name!r} is missing or has the wrong type")
    return info


def convert_trained(trained: Trained, recipe: Recipe) -> Build:
    """The one conversion step: the recipe's PTQ variant, calibrated on the task's fixed calibration inputs."""
    calib = trained.calibration[: recipe["quantize"]["calibration_samples"]]

    def calibration():
        for i in range(len(calib)):
            yield [calib[i : i + 1]]

    mode = recipe["quantize"]["mode"]
    tflite = trained.convert(mode, calib) if trained.convert else convert.to_tflite(trained.model, mode, calibration)
    return Build(tflite=tflite, info=dict(trained.info, quantize=recipe["quantize"]["mode"]))


def build_and_store(ctx: Context, task, section: dict, recipe: Recipe, key: str) -> Build:
    with quiet_stderr():  # TensorFlow's runtime writes C++ log lines straight to fd 2
        fresh_session(recipe["seed"])
        b = convert_trained(task.train(ctx, section, recipe), recipe)
        keras().backend.clear_session()  # drop the training graph and its input pipeline before measuring
        gc.collect()
    b.info["tflite_sha256"] = hashlib.sha256(b.tflite).hexdigest()
    b.info["built_on"] = hostinfo.build_host()
    folder = _cache_folder(key)
    try:
        atomic.write_bytes(folder / "model.tflite", b.tflite)
        atomic.write_json(folder / "build.json", b.info)  # written last: its presence marks a complete build
    except OSError as e:
        raise HarnessError(f"{folder}: cannot write the build cache ({e.strerror or e})") from None
    return b


def _build_worker(payload: dict) -> str:
    """Runs in a separate process (spawned): one seed's build, stored in the shared cache."""
    import sys

    fold = payload.get("fold")
    ctx = Context(data_dir=Path(payload["data_dir"]), options=payload["options"], sealed_test=payload["sealed_test"],
                  fold=tuple(fold) if fold else None,
                  log=lambda m: print(f"[{payload['tag']}] {m.strip()}", flush=True, file=sys.stdout))
    task = get_task(payload["task"])
    recipe = Recipe(path=payload["recipe_path"], data=payload["recipe"])
    build_and_store(ctx, task, payload["section"], recipe, payload["key"])
    return payload["key"]


def build_seeds(ctx: Context, task, section: dict, recipe: Recipe, data_fp: dict, seeds: list[int],
                use_cache: bool, jobs: int) -> list[tuple[Build, bool, str]]:
    """(build, reused from cache, key) per seed. Missing builds run `jobs` at a time in worker processes."""
    keys = [build_key(task, section, with_seed(recipe, s), data_fp) for s in seeds]
    found: dict[str, Build] = {}
    if use_cache:
        for s, k in zip(seeds, keys):
            b = load_cached(k, ctx.log)
            if b is not None:
                ctx.log(f"  seed {s}: build {k} reused from cache")
                found[k] = b
    missing = [(s, k) for s, k in zip(seeds, keys) if k not in found]
    fresh: set[str] = set()
    if missing and jobs > 1 and len(missing) > 1:
        task.prepare(ctx, section, recipe)  # fill the on-disk caches once, before the workers read them
        ctx.log(f"  building {len(missing)} seed(s), {jobs} at a time")
        found.update(build_in_workers(ctx, [payload(ctx, task, section, recipe, s, k) for s, k in missing], jobs))
        fresh.update(k for _, k in missing)
    else:
        for s, k in missing:
            ctx.log(f"  seed {s}: building")
            found[k] = build_and_store(ctx, task, section, with_seed(recipe, s), k)
            fresh.add(k)
    return [(found[k], k not in fresh, k) for k in keys]


def payload(ctx: Context, task, section: dict, recipe: Recipe, seed: int, key: str, tag: str | None = None) -> dict:
    """What a worker process needs to build one seed (tag: its progress lines' prefix)."""
    return {"task": task.name, "section": section, "recipe": with_seed(recipe, seed).data, "recipe_path": recipe.path,
            "seed": seed, "key": key, "tag": tag or f"seed {seed}", "data_dir": str(ctx.data_dir),
            "options": ctx.options, "sealed_test": ctx.sealed_test, "fold": ctx.fold}


def build_in_workers(ctx: Context, payloads: list[dict], jobs: int) -> dict[str, Build]:
    """{key: build} for payloads of distinct keys, built `jobs` at a time; each is read back from the cache and
    verified. A worker that fails stops the command; the builds finished before it stay cached."""
    from concurrent.futures import as_completed

    found: dict[str, Build] = {}
    with workers.pool(jobs) as pool:
        futures = {pool.submit(_build_worker, p): p for p in payloads}
        for done, future in enumerate(as_completed(futures), 1):
            k = future.result()
            b = load_cached(k, ctx.log)
            if b is None:
                raise HarnessError(f"{_cache_folder(k)}: a worker finished but its build is not in the cache")
            found[k] = b
            if len(payloads) > jobs:
                ctx.log(f"  built {done}/{len(payloads)}: {futures[future]['tag']}")
    return found
