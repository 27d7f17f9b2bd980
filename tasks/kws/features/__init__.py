"""The course's KWS preprocessing (log-Mel / MFCC), numerically faithful, in two implementations.

- `NumpyFeatures`: the deployed path, numpy/scipy only (no TensorFlow import), fast per clip and batched.
- `tf_reference_features` / `tf_feature_function`: the course-style tf.signal pipeline, for parity
  tests and as the "course eager tf.signal" latency reference. TensorFlow is imported lazily.

Course semantics (Lab 3, HW2 2020/21-2024/25): float audio = int16 / 32768; for rates below 16 kHz,
`scipy.signal.resample_poly(x, 1, 16000 // rate)`; STFT with FFT length = frame length (not the
next power of two), periodic Hann window, no end padding; magnitude; TF's mel matrix;
log(mel + 1e-6); MFCC = TF's `mfccs_from_log_mel_spectrograms`, first `num_coefficients`.
"""
from tasks.kws.features.args import *  # noqa: F401,F403
from tasks.kws.features.args import PreprocessingArgs  # noqa: F401
from tasks.kws.features.cache import *  # noqa: F401,F403
from tasks.kws.features.cache import _load_cached  # noqa: F401
from tasks.kws.features.constants import *  # noqa: F401,F403
from tasks.kws.features.numpy_pipeline import *  # noqa: F401,F403
from tasks.kws.features.numpy_pipeline import _resample_filter, _reversed_filter  # noqa: F401
from tasks.kws.features.tf_pipeline import *  # noqa: F401,F403
from tasks.kws.features.tf_pipeline import _tf_mel_cached, _tf_pipeline  # noqa: F401
