"""One Keras training loop for every task: LR decay, magnitude pruning, best-epoch selection, QAT."""
from __future__ import annotations

import math
import time

import numpy as np

from harness.toolkit import shrink
from harness.toolkit.tfsetup import keras, seed_everything


class _EpochLog:
    def __init__(self, log, epochs, label):
        self.log, self.epochs, self.label = log, epochs, label

    def callback(self):
        k = keras()
        outer = self

        class CB(k.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                parts = [f"{key} {val:.4g}" for key, val in logs.items() if key != "learning_rate"]
                outer.log(f"    {outer.label} epoch {epoch + 1}/{outer.epochs}  " + "  ".join(parts)
                          + f"  ({time.perf_counter() - self.t0:.1f} s)")

        return CB()


class _KeepBest:
    """Keep the weights of the epoch with the lowest monitored value, after pruning has finished."""

    def __init__(self, monitor: str, mode: str, first_epoch: int):
        self.monitor, self.mode, self.first_epoch = monitor, mode, first_epoch
        self.best = None
        self.weights = None
        self.epoch = None

    def callback(self):
        k = keras()
        outer = self

        class CB(k.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                value = (logs or {}).get(outer.monitor)
                if value is None or epoch < outer.first_epoch:
                    return
                better = outer.best is None or (value < outer.best if outer.mode == "min" else value > outer.best)
                if better:
                    outer.best, outer.epoch = value, epoch + 1
                    outer.weights = [w.copy() for w in self.model.get_weights()]

        return CB()


def learning_rate(train: dict, total_steps: int):
    if train["final_learning_rate"] is None:
        return train["learning_rate"]
    return keras().optimizers.schedules.PolynomialDecay(
        train["learning_rate"], decay_steps=max(total_steps, 1), end_learning_rate=train["final_learning_rate"], power=1.0
    )


def optimizer(train: dict, total_steps: int):
    k = keras()
    lr = learning_rate(train, total_steps)
    if train["weight_decay"]:
        return k.optimizers.AdamW(learning_rate=lr, weight_decay=train["weight_decay"])
    return k.optimizers.Adam(learning_rate=lr)


def _hook_callback(hook):
    k = keras()

    class CB(k.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            hook(epoch, dict(logs or {}))

    return CB()


def fit(model, data, recipe, loss, metrics, log, monitor=("val_loss", "min"), augment=None, epoch_hook=None):
    """Train `model` on data = (x_train, y_train, x_val, y_val). Returns (model, info).

    augment: optional function (x_batch, y_batch, rng, rows) -> (x_batch, y_batch) applied per batch via a
    Python generator (e.g. spectrogram masks; rows index the training set, for per-item alternatives);
    None uses plain array fitting.
    """
    train, prune, quant = recipe["train"], recipe["prune"], recipe["quantize"]
    if quant["qat_epochs"]:  # before seeding, so the probe leaves the training as it would have been
        shrink.check_quantize_aware(model, prune["final_sparsity"] > 0, getattr(recipe, "path", "recipe"))
    seed_everything(recipe["seed"])
    x_tr, y_tr, x_val, y_val = data
    steps_per_epoch = math.ceil(len(x_tr) / train["batch_size"])
    total_steps = steps_per_epoch * train["epochs"]
    callbacks = [_EpochLog(log, train["epochs"], "train").callback()]
    if epoch_hook is not None:
        callbacks.append(_hook_callback(epoch_hook))
    info = {"steps_per_epoch": steps_per_epoch, "total_steps": total_steps}
    pruned = prune["final_sparsity"] > 0
    first_select_epoch = 0
    if pruned:
        model, prune_cbs, sched = shrink.wrap_for_pruning(model, total_steps, prune)
        callbacks += prune_cbs
        info["pruning_schedule"] = sched
        first_select_epoch = math.ceil((sched["end_step"] + 1) / steps_per_epoch) - 1
    keep = None
    if train["select"] == "best-val":
        keep = _KeepBest(monitor[0], monitor[1], first_select_epoch)
        callbacks.append(keep.callback())
    model.compile(optimizer=optimizer(train, total_steps), loss=loss, metrics=metrics)
    t0 = time.perf_counter()
    if augment is None:
        model.fit(x_tr, y_tr, batch_size=train["batch_size"], epochs=train["epochs"], validation_data=(x_val, y_val),
                  shuffle=True, verbose=0, callbacks=callbacks)
    else:
        model.fit(_batches(x_tr, y_tr, train["batch_size"], augment, recipe["seed"], total_steps), steps_per_epoch=steps_per_epoch,
                  epochs=train["epochs"], validation_data=(x_val, y_val), verbose=0, callbacks=callbacks)
    info["train_seconds"] = round(time.perf_counter() - t0, 2)
    if keep is not None and keep.weights is not None:
        model.set_weights(keep.weights)
        info["selected_epoch"] = keep.epoch
    else:
        info["selected_epoch"] = train["epochs"]
    if pruned:
        model = shrink.strip_pruning(model)
        info["keras_sparsity"] = round(shrink.keras_sparsity(model), 4)
    if quant["qat_epochs"]:
        model = _qat(model, data, recipe, loss, metrics, log, pruned, steps_per_epoch)
        info["qat_epochs"] = quant["qat_epochs"]
    return model, info


def _qat(model, data, recipe, loss, metrics, log, pruned, steps_per_epoch):
    k = keras()
    x_tr, y_tr, x_val, y_val = data
    q = shrink.quantize_aware(model, pruned)
    epochs = recipe["quantize"]["qat_epochs"]
    final_lr = recipe["train"]["final_learning_rate"] or recipe["train"]["learning_rate"]
    q.compile(optimizer=k.optimizers.Adam(learning_rate=final_lr), loss=loss, metrics=metrics)
    q.fit(x_tr, y_tr, batch_size=recipe["train"]["batch_size"], epochs=epochs, validation_data=(x_val, y_val),
          shuffle=True, verbose=0, callbacks=[_EpochLog(log, epochs, "qat").callback()])
    return q


def _batches(x, y, batch_size, augment, seed, total_batches):
    """Shuffled batches with a seeded augmentation (deterministic across runs), exactly as many as fit uses.

    Finite on purpose: Keras prefetches from a generator in a background thread, and an endless one kept
    augmenting after training, slowing every later latency measurement in the process (2-15 ms vs 0.5 ms).
    """
    rng = np.random.default_rng(seed)
    n = len(x)
    produced = 0
    while produced < total_batches:
        order = rng.permutation(n)
        for i in range(0, n, batch_size):
            if produced == total_batches:
                return
            idx = order[i : i + batch_size]
            produced += 1
            yield augment(x[idx], y[idx], rng, idx)
