"""Training-time optimizations: magnitude pruning (tfmot PolynomialDecay) and quantization-aware training."""
from __future__ import annotations

import warnings

import numpy as np

from harness.core.errors import HarnessError
from harness.toolkit.tfsetup import keras, tfmot


def pruning_steps(total_steps: int, prune: dict) -> tuple[int, int, int]:
    """(begin_step, end_step, frequency) such that the final sparsity is really reached.

    PolynomialDecay only updates masks on steps where (step - begin) % frequency == 0 and
    begin <= step <= end; with the default frequency of 100 a short run prunes nothing.
    """
    last = max(total_steps - 1, 1)
    begin = min(int(round(prune["begin"] * total_steps)), last - 1)
    end = min(max(int(round(prune["end"] * total_steps)), begin + 1), last)
    freq = prune["frequency"] or max(1, (end - begin) // 20)
    freq = min(freq, end - begin)
    end = begin + ((end - begin) // freq) * freq  # land exactly on a pruning step
    return begin, end, freq


def prunable(layer) -> bool:
    """tfmot has no prunable weights for DepthwiseConv2D; BN, pooling and reshapes pass through."""
    k = keras().layers
    return isinstance(layer, (k.Dense, k.Conv2D, k.Conv1D)) and not isinstance(layer, k.DepthwiseConv2D)


def wrap_for_pruning(model, total_steps: int, prune: dict):
    mot = tfmot()
    begin, end, freq = pruning_steps(total_steps, prune)
    schedule = mot.sparsity.keras.PolynomialDecay(
        initial_sparsity=prune["initial_sparsity"],
        final_sparsity=prune["final_sparsity"],
        begin_step=begin,
        end_step=end,
        frequency=freq,
    )

    def clone(layer):
        if prunable(layer):
            return mot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    wrapped = keras().models.clone_model(model, clone_function=clone)
    return wrapped, [mot.sparsity.keras.UpdatePruningStep()], {"begin_step": begin, "end_step": end, "frequency": freq}


def strip_pruning(model):
    return tfmot().sparsity.keras.strip_pruning(model)


def quantize_aware(model, pruned: bool):
    """QAT wrapper; keeps the zeros of a pruned model (prune-preserving QAT)."""
    mot = tfmot()
    if pruned:
        annotated = mot.quantization.keras.quantize_annotate_model(model)
        return mot.quantization.keras.quantize_apply(
            annotated, mot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        )
    return mot.quantization.keras.quantize_model(model)


def check_quantize_aware(model, pruned: bool, where: str = "recipe") -> None:
    """Refuse, before any training, a model tfmot cannot wrap for QAT (e.g. a Lambda, Subtract or Normalization
    layer): otherwise the whole training runs and the build then fails."""
    try:
        with warnings.catch_warnings():  # tfmot warns about each Lambda layer before it fails on it
            warnings.simplefilter("ignore")
            quantize_aware(model, pruned)
    except (ValueError, RuntimeError, TypeError) as e:
        reason = next(iter(str(e).strip().splitlines()), type(e).__name__).split(". ")[0]  # its first sentence
        raise HarnessError(f"{where}: key 'quantize.qat_epochs': this model cannot be trained quantization-aware "
                           f"({reason[:160]}); use 0 (int8 post-training quantization needs no training)") from None


def keras_sparsity(model) -> float:
    """Fraction of zeros over the kernels of prunable layers (before conversion)."""
    zeros = total = 0
    for layer in model.layers:
        if prunable(layer):
            w = layer.get_weights()[0]
            zeros += int(np.sum(w == 0))
            total += w.size
    return zeros / total if total else 0.0
