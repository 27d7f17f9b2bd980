"""BC-ResNet (Kim et al. 2021, "Broadcasted Residual Learning for Efficient Keyword Spotting", arXiv:2106.04140).

Conv2D 16·τ 5×5 (frequency stride 2) → 4 stages of BC-ResBlocks ([2, 2, 4, 4] blocks, 8/12/16/20·τ channels,
frequency strides 1/2/2/1, time dilations 1/2/4/8) → DepthwiseConv2D 5×5 → mean over frequency → Conv2D 1×1
32·τ → mean over time → Dense.

A BC-ResBlock keeps a 2-D path cheap by splitting it: a frequency-only depthwise convolution over the whole
[time, frequency] map, then a time-only depthwise convolution on its mean over frequency, whose output is broadcast
back over frequency and added. Paper: BC-ResNet-1 (τ = 1, ~9 K parameters) 96.6 % on 12-class Speech Commands v1,
against 94.4 % for DS-CNN-S. Input layout [batch, time, frequency, 1] (log-Mel bands: `features.num_coefficients = 0`).

`sub_bands > 1` normalises each of that many frequency sub-bands separately (SubSpectral Normalization, as in the
paper); 1 is a plain BatchNorm, fewer ops in the file. Stage frequency sizes must divide by it.

On the 8 mini Speech Commands keywords with the DS-CNN recipes' 30-epoch training it scored below DS-CNN-S in
cross-validation (figures in the 2022 c recipe); the paper trains 200 epochs on ~13x the clips.
"""
from harness.core.errors import HarnessError
from harness.toolkit.tfsetup import keras
from tasks.kws.models import register, units

STAGE_FILTERS = (8, 12, 16, 20)


def _norm(h, sub_bands: int, name: str):
    k = keras().layers
    if sub_bands == 1:
        return k.BatchNormalization(momentum=0.9, name=f"{name}bn")(h)
    t, f, c = h.shape[1], h.shape[2], h.shape[3]
    if f % sub_bands:
        raise HarnessError(f"model.sub_bands = {sub_bands} does not divide a stage's {f} frequency bins")
    # [B, T, F, C] -> [B, S, (F/S)·T, C]: one mean and variance per (sub-band, channel)
    h = k.Permute((2, 1, 3), name=f"{name}ssn_in")(h)
    h = k.Reshape((sub_bands, (f // sub_bands) * t, c), name=f"{name}ssn_split")(h)
    h = k.BatchNormalization(axis=[1, 3], momentum=0.9, name=f"{name}ssn")(h)
    h = k.Reshape((f, t, c), name=f"{name}ssn_join")(h)
    return k.Permute((2, 1, 3), name=f"{name}ssn_out")(h)


def _block(x, filters: int, freq_stride: int, dilation: int, dropout: float, sub_bands: int, name: str):
    """One BC-ResBlock; a transition block (channels change) has no identity path and opens with a 1×1 conv."""
    k = keras().layers
    transition = x.shape[-1] != filters or freq_stride != 1
    h = x
    if transition:
        h = k.Conv2D(filters, 1, use_bias=False, name=f"{name}expand")(h)
        h = k.BatchNormalization(momentum=0.9, name=f"{name}expand_bn")(h)
        h = k.ReLU(name=f"{name}expand_relu")(h)
    h = k.DepthwiseConv2D((1, 3), strides=(1, freq_stride), padding="same", use_bias=False, name=f"{name}freq_dw")(h)
    h = _norm(h, sub_bands, f"{name}freq_")
    # the time path runs on the mean over frequency and is broadcast back
    y = k.AveragePooling2D((1, h.shape[2]), name=f"{name}freq_mean")(h)
    y = k.DepthwiseConv2D((3, 1), dilation_rate=(dilation, 1), padding="same", use_bias=False, name=f"{name}time_dw")(y)
    y = k.BatchNormalization(momentum=0.9, name=f"{name}time_bn")(y)
    y = k.Activation("swish", name=f"{name}swish")(y)
    y = k.Conv2D(filters, 1, use_bias=False, name=f"{name}time_pw")(y)
    if dropout:
        y = k.SpatialDropout2D(dropout, name=f"{name}drop")(y)
    out = k.Add(name=f"{name}add")([h, y] if transition else [x, h, y])
    return k.ReLU(name=f"{name}relu")(out)


@register("bc_resnet")
def build(input_shape, num_labels, *, width: float = 1.0, blocks: list = [2, 2, 4, 4],
          dilations: list = [1, 2, 4, 8], freq_strides: list = [1, 2, 2, 1], dropout: float = 0.1,
          sub_bands: int = 1):
    k = keras()
    if not len(blocks) == len(dilations) == len(freq_strides) == len(STAGE_FILTERS):
        raise HarnessError(f"model.blocks, model.dilations and model.freq_strides must each list "
                           f"{len(STAGE_FILTERS)} stages")
    x = k.Input(input_shape, name="features")
    h = k.layers.Conv2D(units(16, width), 5, strides=(1, 2), padding="same", name="c0_conv")(x)
    for s, (n, d, stride) in enumerate(zip(blocks, dilations, freq_strides)):
        for i in range(n):
            h = _block(h, units(STAGE_FILTERS[s], width), stride if i == 0 else 1, d, dropout, sub_bands,
                       name=f"s{s}b{i}_")
    h = k.layers.DepthwiseConv2D(5, padding="same", name="head_dw")(h)
    h = k.layers.AveragePooling2D((1, h.shape[2]), name="head_freq_mean")(h)
    h = k.layers.Conv2D(units(32, width), 1, use_bias=False, name="head_pw")(h)
    h = k.layers.GlobalAveragePooling2D(name="gap")(h)
    return k.Model(x, k.layers.Dense(num_labels, name="logits")(h), name="bc_resnet")
