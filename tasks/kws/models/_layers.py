"""Building blocks shared by the keyword-spotting models (the leading underscore keeps it out of the registry scan)."""
from harness.toolkit.tfsetup import keras


def subtract_time_mean(x, name="cmn"):
    """Each coefficient minus its mean over the clip (cepstral mean normalisation), inside the model so the shipped
    file does it too: a speaker's or microphone's constant offset never reaches the convolutions."""
    k = keras().layers
    mean = k.AveragePooling2D(pool_size=(x.shape[1], 1), name=f"{name}_mean")(x)
    return k.Subtract(name=name)([x, mean])


def conv_bn_relu(h, filters, kernel, strides=(1, 1), padding="same", name=""):
    k = keras().layers
    h = k.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=f"{name}conv")(h)
    h = k.BatchNormalization(momentum=0.9, name=f"{name}bn")(h)
    return k.ReLU(name=f"{name}relu")(h)


def depthwise_bn_relu(h, kernel=(3, 3), padding="same", bn=True, name=""):
    k = keras().layers
    h = k.DepthwiseConv2D(kernel, padding=padding, use_bias=not bn, name=f"{name}dw")(h)
    if bn:
        h = k.BatchNormalization(momentum=0.9, name=f"{name}dwbn")(h)
        h = k.ReLU(name=f"{name}dwrelu")(h)
    return h


def classifier(h, num_labels, dropout=0.0):
    k = keras().layers
    h = k.GlobalAveragePooling2D(name="gap")(h)
    if dropout:
        h = k.Dropout(dropout, name="drop")(h)
    return k.Dense(num_labels, name="logits")(h)
