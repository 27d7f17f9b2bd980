"""ml4iot harness: train, shrink, convert and measure tiny models against versioned constraints.

Importing the package fixes the TensorFlow environment before any TensorFlow import:
tfmot needs tf_keras (Keras 2), and determinism depends on oneDNN and thread settings.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN stays on (default): turning it off changes numerics and doubles epoch time.

__version__ = "0.1.0"
