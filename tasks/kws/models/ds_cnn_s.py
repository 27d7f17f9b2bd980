"""Hello Edge / MLPerf Tiny DS-CNN: Conv2D 64·α 10×4 stride 2 → BN → ReLU →
n × [DepthwiseConv2D 3×3 → BN → ReLU → Conv2D 1×1 → BN → ReLU] → GAP → Dense.

`residual=true` adds an identity shortcut around every block after the first (same shape),
which trains faster and better at small widths (our "res" variant). `subtract_time_mean=true` removes each
coefficient's mean over the clip first (cepstral mean normalisation, in the file).
"""
from harness.toolkit.tfsetup import keras
from tasks.kws.models import register, units
from tasks.kws.models import _layers
from tasks.kws.models._layers import classifier, conv_bn_relu, depthwise_bn_relu


@register("ds_cnn_s")
def build(input_shape, num_labels, *, width: float = 1.0, filters: int = 64, blocks: int = 4,
          first_kernel: list = [10, 4], first_stride: list = [2, 2], residual: bool = False, dropout: float = 0.0,
          subtract_time_mean: bool = False):
    k = keras()
    x = k.Input(input_shape, name="features")
    f = units(filters, width)
    h = conv_bn_relu(_layers.subtract_time_mean(x) if subtract_time_mean else x, f, tuple(first_kernel), tuple(first_stride), "same", name="c0_")
    for i in range(blocks):
        y = depthwise_bn_relu(h, (3, 3), "same", name=f"b{i}_")
        y = conv_bn_relu(y, f, (1, 1), name=f"b{i}_pw")
        h = k.layers.Add(name=f"b{i}_add")([h, y]) if residual and i > 0 else y
    return k.Model(x, classifier(h, num_labels, dropout), name="ds_cnn_s")
