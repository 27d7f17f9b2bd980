"""Numbers the feature code shares (rates, log offset, the cache version)."""
from __future__ import annotations

FEATURES_VERSION = 2  # bump when the feature numerics change: invalidates every feature cache
SOURCE_RATE_HZ = 16000  # rate of the corpus clips
LATENCY_SOURCE_RATE_HZ = 48000  # rate of the 2020/21-2021/22 latency protocol input
LOG_OFFSET = 1e-6
_MEL_BREAK_FREQUENCY_HZ = 700.0  # HTK mel scale, as TF
_MEL_HIGH_FREQUENCY_Q = 1127.0
_BATCH_CLIPS = 256  # clips per chunk in batched extraction: bounds memory to tens of MB
