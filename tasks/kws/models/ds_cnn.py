"""Course lab DS-CNN: Conv2D 256·α 3×3 → BN → ReLU → n × [DepthwiseConv2D 3×3 → Conv2D 1×1 → BN → ReLU] → GAP → Dense.

The 2021/22 lab has no BN after the depthwise convolution (`dw_bn=false`); most groups used
filters 128·α or 256·α.
"""
from harness.toolkit.tfsetup import keras
from tasks.kws.models import register, units
from tasks.kws.models._layers import classifier, conv_bn_relu, depthwise_bn_relu


@register("ds_cnn")
def build(input_shape, num_labels, *, width: float = 1.0, filters: int = 256, blocks: int = 2,
          first_stride: list = [2, 1], padding: str = "same", dw_bn: bool = False, dropout: float = 0.0):
    k = keras()
    x = k.Input(input_shape, name="features")
    f = units(filters, width)
    h = conv_bn_relu(x, f, (3, 3), tuple(first_stride), "valid", name="c0_")
    for i in range(blocks):
        h = depthwise_bn_relu(h, (3, 3), padding, bn=dw_bn, name=f"b{i}_")
        h = conv_bn_relu(h, f, (1, 1), name=f"b{i}_pw")
    return k.Model(x, classifier(h, num_labels, dropout), name="ds_cnn")
