"""Course lab CNN: 3 × [Conv2D 128·α 3×3 (no bias) → BN → ReLU] → GAP → Dense.

First stride (2, 1) for MFCC input, (2, 2) for STFT images (2021/22 lab); `padding` "valid" is the
2021/22 lab, "same" for the 2nd and 3rd convolutions is the Deepnote-era lab.
"""
from harness.toolkit.tfsetup import keras
from tasks.kws.models import register, units
from tasks.kws.models._layers import classifier, conv_bn_relu


@register("cnn")
def build(input_shape, num_labels, *, width: float = 1.0, filters: int = 128, first_stride: list = [2, 1],
          padding: str = "valid", layers: int = 3):
    k = keras()
    x = k.Input(input_shape, name="features")
    f = units(filters, width)
    h = conv_bn_relu(x, f, (3, 3), tuple(first_stride), "valid", name="c0_")
    for i in range(1, layers):
        h = conv_bn_relu(h, f, (3, 3), (1, 1), padding, name=f"c{i}_")
    return k.Model(x, classifier(h, num_labels), name="cnn")
