"""The unconstrained reference: a large model on the same inputs ([6, 2] in °C and %RH), no size limit.

It says how far a tiny forecaster is from what the inputs allow, and whether a limit is within reach at all
(on the full-season profile even this model misses MAE(RH) < 1.2 at K = 3). It is a reference in the tables,
never a shipped model. Early stopping reads the validation split only; its MAE is then measured on the split
being reported. Its figures are cached on disk by the content of the windows (sha256-verified JSON).
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from harness.toolkit import atomic
from harness.toolkit.datasets import cache_dir

NAME = "Unconstrained reference (MLP 2 × 256 on the differences and levels, L1 loss, no size limit, seed 1)"
VERSION = 1  # bump when the model or its training changes: invalidates the cached figures
SEED, MAX_EPOCHS, PATIENCE, BATCH = 1, 200, 15, 256


def _key(w, K: int) -> str:
    h = hashlib.sha256(json.dumps({"v": VERSION, "K": K, "seed": SEED}).encode())
    for split in ("train", "val", "test"):
        h.update(np.ascontiguousarray(w.x[split]).tobytes())
        h.update(np.ascontiguousarray(w.y[split]).tobytes())
    return h.hexdigest()[:32]


def mae(w, K: int, split: str, log=print) -> dict[str, float]:
    """MAE(T) in °C and MAE(RH) in %RH of the reference on `split` (trained once per set of windows)."""
    path = cache_dir() / "forecast_reference" / f"{_key(w, K)}.json"
    try:
        cached = json.loads(path.read_text())
        body = cached["figures"]
        if cached["sha256"] == hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest():
            return body[split]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing or damaged: train again
    log(f"  unconstrained reference: training (K = {K}, {len(w.x['train']):,} windows)")
    figures = _train_and_measure(w, K)
    atomic.write_json(path, {"figures": figures,
                             "sha256": hashlib.sha256(json.dumps(figures, sort_keys=True).encode()).hexdigest()})
    return figures[split]


def _train_and_measure(w, K: int) -> dict:
    from harness.toolkit.tfsetup import keras, seed_everything

    k = keras()
    seed_everything(SEED)
    scale = np.abs(np.repeat(w.x["train"][:, -1:], K, 1) - w.y["train"]).mean((0, 1)).astype(np.float32)
    mean, std = np.asarray(w.mean, np.float32), np.asarray(w.std, np.float32)
    x = k.Input((w.x["train"].shape[1], 2))
    last = k.layers.Lambda(lambda t: t[:, -1:, :])(x)
    d = k.layers.Lambda(lambda a: (a[0] - a[1]) / scale)([x, last])  # differences to the last value
    lv = k.layers.Lambda(lambda t: (t - mean) / std)(x)  # normalized levels
    h = k.layers.Flatten()(k.layers.Concatenate(axis=-1)([d, lv]))
    for _ in range(2):
        h = k.layers.Dense(256, activation="relu")(h)
    z = k.layers.Reshape((K, 2))(k.layers.Dense(K * 2)(h))
    model = k.Model(x, k.layers.Lambda(lambda a: a[0] * scale + a[1])([z, last]))
    weight = 1.0 / scale
    model.compile(k.optimizers.Adam(1e-3), loss=lambda y, p: k.backend.mean(k.backend.abs(y - p) * weight))
    stop = [k.callbacks.EarlyStopping(patience=PATIENCE, restore_best_weights=True),
            k.callbacks.ReduceLROnPlateau(factor=0.3, patience=PATIENCE // 3, min_lr=1e-5)]
    hist = model.fit(w.x["train"], w.y["train"], batch_size=BATCH, epochs=MAX_EPOCHS, shuffle=True, verbose=0,
                     validation_data=(w.x["val"], w.y["val"]), callbacks=stop)
    out = {"params": int(model.count_params()), "epochs": len(hist.history["loss"])}
    for split in ("val", "test"):
        p = model.predict(w.x[split], batch_size=4096, verbose=0).astype(np.float64)
        e = np.abs(p - w.y[split]).mean((0, 1))
        out[split] = {"mae_t_degc": float(e[0]), "mae_rh_pct": float(e[1])}
    k.backend.clear_session()
    return out
