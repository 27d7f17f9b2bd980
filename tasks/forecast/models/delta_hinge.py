"""delta_linear plus a few ReLU ("hinge") units on the differences, folded into two FC layers on the raw input.

Trained as  y = last + scale * (L·d + c + V·relu(W·[d, level] + b)),  d = (x[:-1] - last) / scale:
the linear part is delta_linear (translation-invariant, so it does not drag forecasts towards the
training season's level); `hidden` ReLU units add a small non-linear correction (`level = true` also
feeds them the normalized last value, e.g. RH saturating near 100 %). Everything before each ReLU is
linear in x, so export folds normalization, differences and residual into plain weights:

    x[1, 6, 2] -> Flatten(12) -> FC(hidden, relu) -> Concat([h, x]) -> FC(2K) -> Reshape(K, 2)

(hidden = 0: one FC, i.e. delta_linear's graph). `exact16 = true` rounds the folded weights on a
power-of-two grid so that, per feature, the weights on the six steps still sum exactly to what they
sum to in the trained model (0 for a difference, 1 for the residual) after a float16 cast: float16
weights then keep the model blind to the level instead of adding level * rounding error.
"""
from __future__ import annotations

import numpy as np

from harness.core.errors import HarnessError
from harness.toolkit.tfsetup import keras
from tasks.forecast.models import Bundle, register
from tasks.forecast.models.delta_linear import delta_inputs, residual_head


def _round_bits(a: np.ndarray, bits: int) -> np.ndarray:
    """Each value rounded to `bits` significant mantissa bits (the low bits of a float32 become zeros: zlib
    packs them, and bits <= 10 are also float16-exact)."""
    m, e = np.frexp(np.asarray(a, np.float64))
    return np.ldexp(np.round(m * 2.0**bits) / 2.0**bits, e)


def _fp16_exact(w: np.ndarray, n_steps: int, bits: int = 10) -> np.ndarray:
    """Round each column of w [n_steps*2, n_out] on a power-of-two grid (`bits` significant bits for its largest
    weight) so that it is float16-exact and, per feature, its sum over the steps equals the (grid-rounded)
    original sum exactly. The last step absorbs the difference."""
    w = np.array(w, np.float64)
    out = w.copy()
    for col in range(w.shape[1]):
        for f in range(2):
            idx = np.arange(f, n_steps * 2, 2)
            v = w[idx, col]
            s = v.sum()
            m = max(np.abs(v).max(), abs(s), 1e-30)
            e = int(np.floor(np.log2(m))) + 1
            q = 2.0 ** (e - bits)
            for _ in range(30):
                vr = np.round(v[:-1] / q) * q
                sr = np.round(s / q) * q
                cand = np.append(vr, sr - vr.sum())
                if np.array_equal(cand.astype(np.float16).astype(np.float64), cand):
                    break
                q *= 2
            out[idx, col] = cand
    return out


def _sum_exact(w: np.ndarray, n_steps: int, bits: int) -> np.ndarray:
    """Every weight but the last step's rounded to `bits` significant bits (zlib packs the zeroed low bits of a
    float32); the last step's weight keeps each feature's sum over the steps exact (float32 export only)."""
    w = np.array(w, np.float64)
    out = _round_bits(w, bits)
    for f in range(2):
        idx = np.arange(f, n_steps * 2, 2)
        out[idx[-1]] = w[idx].sum(axis=0) - out[idx[:-1]].sum(axis=0)
    return out


def _grid_exact(w: np.ndarray, n_steps: int, bits: int) -> np.ndarray:
    """Per column and feature, the earlier steps' weights on one power-of-two grid (`bits` significant bits for the
    largest of them), the sum over the steps rounded to the same grid and restored exactly by the last step's
    weight: few significant bits (zlib packs the zeros of a float32) and exact translation invariance in float32."""
    w = np.array(w, np.float64)
    out = w.copy()
    for col in range(w.shape[1]):
        for f in range(2):
            idx = np.arange(f, n_steps * 2, 2)
            v = w[idx[:-1], col]
            m = max(np.abs(v).max(), 1e-30)
            q = 2.0 ** (int(np.floor(np.log2(m))) + 1 - bits)
            vr = np.round(v / q) * q
            sr = np.round(w[idx, col].sum() / q) * q
            out[idx[:-1], col] = vr
            out[idx[-1], col] = sr - vr.sum()
    return out


def _fold(model, input_steps: int, output_steps: int, stats, hidden: int, level: bool, exact16: bool,
          bits: int = 10, graph: str = "concat", rounding: str = "fp16"):
    k = keras()
    n = input_steps * 2
    scale = np.asarray(stats.delta_scale, np.float64)
    get = {lay.name: lay.get_weights() for lay in model.layers if lay.get_weights()}

    def on_x(a):  # weights on the flattened differences d [ (n_steps-1)*2, out ] -> weights on x [n, out]
        w = np.zeros((n, a.shape[1]))
        for t in range(input_steps - 1):
            for f in range(2):
                w[2 * t + f] = a[2 * t + f] / scale[f]
                w[n - 2 + f] -= a[2 * t + f] / scale[f]
        return w

    exact16 = exact16 and rounding != "off"

    def rnd(w):  # exact sums per feature (translation invariance survives the rounding / the cast)
        if not exact16:
            return w
        if rounding == "grid":
            return _grid_exact(w, input_steps, bits)
        return _fp16_exact(w, input_steps, bits) if rounding == "fp16" else _sum_exact(w, input_steps, bits)

    lin = get["delta"]
    L = lin[0].astype(np.float64)
    c = lin[1].astype(np.float64) if len(lin) > 1 else np.zeros(L.shape[1])
    sc = np.tile(scale, output_steps)  # per output column (k, f) -> scale_f
    C = on_x(L) * sc
    for kk in range(output_steps):
        for f in range(2):
            C[n - 2 + f, 2 * kk + f] += 1.0  # the residual: + last
    C = rnd(C)
    bias = _round_bits(c * sc, bits) if exact16 else c * sc
    x = k.Input((input_steps, 2), name="x")
    f = k.layers.Flatten(name="f")(x)
    if not hidden:
        use_bias = bool(np.any(np.abs(bias) > 1e-7))
        dense = k.layers.Dense(output_steps * 2, use_bias=use_bias, name="fc")
        y = k.layers.Reshape((output_steps, 2), name="y")(dense(f))
        folded = k.Model(x, y, name="m")
        dense.set_weights([C.astype(np.float32)] + ([bias.astype(np.float32)] if use_bias else []))
        return folded
    W, b = [a.astype(np.float64) for a in get["hidden"]]
    n_d = (input_steps - 1) * 2
    W1 = on_x(W[:n_d])
    b1 = b.copy()
    if level:
        std = np.asarray(stats.std, np.float64) + 1e-6
        mean = np.asarray(stats.mean, np.float64)
        for ff in range(2):
            W1[n - 2 + ff] += W[n_d + ff] / std[ff]
            b1 -= W[n_d + ff] * mean[ff] / std[ff]
    W1 = rnd(W1)
    V = get["head"][0].astype(np.float64) * sc
    if exact16:
        b1, V = _round_bits(b1, bits), _round_bits(V, bits)
    if graph == "concat":  # FC(h, relu) -> Concat([h, x]) -> FC(2K)
        h = k.layers.Dense(hidden, activation="relu", name="h")(f)
        g = k.layers.Concatenate(name="c")([h, f])
        dense = k.layers.Dense(output_steps * 2, name="o")
        y = k.layers.Reshape((output_steps, 2), name="y")(dense(g))
        folded = k.Model(x, y, name="m")
        folded.get_layer("h").set_weights([W1.astype(np.float32), b1.astype(np.float32)])
        dense.set_weights([np.concatenate([V, C]).astype(np.float32), bias.astype(np.float32)])
        return folded
    # chain: FC(2K + hidden, relu) -> FC(2K); the first 2K units carry the linear forecast + an offset that
    # keeps it positive (T > -64 degC, RH > -16 %RH), removed by the second layer's bias (exact in float32 only).
    off = np.tile([64.0, 16.0], output_steps)
    W1c = np.concatenate([C, W1], axis=1)
    b1c = np.concatenate([bias + off, b1])
    W2 = np.concatenate([np.eye(2 * output_steps), V])
    h = k.layers.Dense(2 * output_steps + hidden, activation="relu", name="h")(f)
    dense = k.layers.Dense(output_steps * 2, name="o")
    y = k.layers.Reshape((output_steps, 2), name="y")(dense(h))
    folded = k.Model(x, y, name="m")
    folded.get_layer("h").set_weights([W1c.astype(np.float32), b1c.astype(np.float32)])
    dense.set_weights([W2.astype(np.float32), (-off).astype(np.float32)])
    return folded


@register("delta_hinge")
def build(input_steps, output_steps, stats, *, hidden: int = 2, level: bool = False, bias: bool = True,
          exact16: bool = True, bits: int = 10, graph: str = "concat", rounding: str = "fp16"):
    if rounding not in ("fp16", "grid", "bits", "off"):
        raise HarnessError(f"key 'model.rounding' must be 'fp16', 'grid', 'bits' or 'off', not {rounding!r}")
    if graph not in ("concat", "chain"):
        raise HarnessError(f"key 'model.graph' must be 'concat' or 'chain', not {graph!r}")
    k = keras()
    x = k.Input((input_steps, 2), name="x")
    last, d = delta_inputs(x, stats, input_steps)
    z = k.layers.Dense(output_steps * 2, use_bias=bias, kernel_initializer="zeros", name="delta")(d)
    if hidden:
        hin = d
        if level:
            std = np.asarray(stats.std, np.float32) + 1e-6
            mean = np.asarray(stats.mean, np.float32)
            lv = k.layers.Flatten(name="lvl")(k.layers.Lambda(lambda t: (t - mean) / std, name="norm")(last))
            hin = k.layers.Concatenate(name="cat")([d, lv])
        h = k.layers.Dense(hidden, activation="relu", name="hidden")(hin)
        z = k.layers.Add(name="sum")([z, k.layers.Dense(output_steps * 2, use_bias=False, name="head")(h)])
    model = k.Model(x, residual_head(z, last, output_steps, stats))
    return Bundle(
        model,
        export=lambda m: _fold(m, input_steps, output_steps, stats, hidden, level, exact16, bits, graph, rounding),
        loss_weights=[1.0 / s for s in stats.delta_scale],
    )
