"""PREPROCESSING_ARGS: the course's feature settings, validated, with the shapes they give."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np

from harness.core.errors import HarnessError
from tasks.kws.features.constants import LATENCY_SOURCE_RATE_HZ, SOURCE_RATE_HZ

# --------------------------------------------------------------------------------------------
# Arguments


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


@dataclass(frozen=True)
class PreprocessingArgs:
    """The course's PREPROCESSING_ARGS. Defaults are the course default (16 kHz, 40/20 ms, 40 mel, 20-4000 Hz, 10 MFCC).

    sampling_rate: Hz after resampling (16000 or an integer divisor of 16000 and 48000);
    frame_length_in_s, frame_step_in_s: STFT window and hop, s (integer numbers of samples);
    num_mel_bins; lower_frequency, upper_frequency: mel filter edges, Hz;
    num_coefficients: MFCCs kept, 0 = log-Mel features.
    """

    sampling_rate: int = 16000
    frame_length_in_s: float = 0.04
    frame_step_in_s: float = 0.02
    num_mel_bins: int = 40
    lower_frequency: float = 20.0
    upper_frequency: float = 4000.0
    num_coefficients: int = 10

    def __post_init__(self):
        self._validate("PreprocessingArgs")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "PREPROCESSING_ARGS") -> "PreprocessingArgs":
        """Build from a course-style dict; unknown/missing key, wrong type or impossible value -> HarnessError.

        The 2022/23 lab spelled the rate after resampling `downsampling_rate`; it is read as `sampling_rate`."""
        if not isinstance(d, Mapping):
            raise HarnessError(f"{where}: preprocessing arguments must be a table/dict, got {type(d).__name__}")
        if "downsampling_rate" in d:
            if "sampling_rate" in d:
                raise HarnessError(f"{where}: both 'sampling_rate' and 'downsampling_rate' (the 2022/23 lab's name for it) given")
            d = {("sampling_rate" if k == "downsampling_rate" else k): v for k, v in d.items()}
        names = [f.name for f in fields(cls)]
        for key in d:
            if key not in names:
                raise HarnessError(f"{where}: unknown preprocessing key {key!r} (allowed: {', '.join(names)})")
        for key in names:
            if key not in d:
                raise HarnessError(f"{where}: missing preprocessing key {key!r}")
        args = object.__new__(cls)
        for key in names:
            object.__setattr__(args, key, d[key])
        args._validate(where)
        return args

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _validate(self, where: str) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and not _is_int(value):
                raise HarnessError(f"{where}: {f.name} must be an integer, got {value!r}")
            if f.type == "float" and not (_is_number(value) and math.isfinite(value)):
                raise HarnessError(f"{where}: {f.name} must be a finite number, got {value!r}")
            # Normalise types so to_dict() (and hence cache keys) does not depend on 20 vs 20.0.
            object.__setattr__(self, f.name, int(value) if f.type == "int" else float(value))
        rate = self.sampling_rate
        if rate <= 0 or SOURCE_RATE_HZ % rate or LATENCY_SOURCE_RATE_HZ % rate:
            raise HarnessError(f"{where}: sampling_rate {rate} Hz must divide {SOURCE_RATE_HZ} and "
                               f"{LATENCY_SOURCE_RATE_HZ} Hz")
        self._check_samples(where, "frame_length_in_s", minimum=2)
        self._check_samples(where, "frame_step_in_s", minimum=1)
        if self.frame_length > rate:
            raise HarnessError(f"{where}: frame_length_in_s {self.frame_length_in_s} s is longer than the 1 s clip")
        if self.num_mel_bins < 1:
            raise HarnessError(f"{where}: num_mel_bins must be >= 1, got {self.num_mel_bins}")
        if self.lower_frequency < 0:
            raise HarnessError(f"{where}: lower_frequency must be >= 0 Hz, got {self.lower_frequency}")
        if self.upper_frequency > rate / 2:
            raise HarnessError(f"{where}: upper_frequency {self.upper_frequency} Hz exceeds the Nyquist "
                               f"frequency {rate / 2:g} Hz of sampling_rate {rate}")
        if self.lower_frequency >= self.upper_frequency:
            raise HarnessError(f"{where}: lower_frequency {self.lower_frequency} Hz must be below "
                               f"upper_frequency {self.upper_frequency} Hz")
        if not 0 <= self.num_coefficients <= self.num_mel_bins:
            raise HarnessError(f"{where}: num_coefficients must be 0 (log-Mel) or 1..num_mel_bins "
                               f"({self.num_mel_bins}), got {self.num_coefficients}")

    def _check_samples(self, where: str, key: str, minimum: int) -> None:
        seconds = getattr(self, key)
        samples = seconds * self.sampling_rate
        if not math.isfinite(samples) or abs(samples - round(samples)) > 1e-6 or round(samples) < minimum:
            raise HarnessError(f"{where}: {key} {seconds} s is not a whole number (>= {minimum}) of samples "
                               f"at {self.sampling_rate} Hz ({samples:g})")

    # -- derived sizes -----------------------------------------------------------------------
    @property
    def frame_length(self) -> int:
        """STFT window (= FFT length), samples."""
        return int(round(self.frame_length_in_s * self.sampling_rate))

    @property
    def frame_step(self) -> int:
        """STFT hop, samples."""
        return int(round(self.frame_step_in_s * self.sampling_rate))

    @property
    def num_spectrogram_bins(self) -> int:
        return self.frame_length // 2 + 1

    @property
    def num_frames(self) -> int:
        """Frames of a 1 s clip (no end padding)."""
        return (self.sampling_rate - self.frame_length) // self.frame_step + 1

    @property
    def num_features(self) -> int:
        return self.num_coefficients or self.num_mel_bins

    @property
    def feature_shape(self) -> tuple[int, int]:
        """(frames, MFCCs or mel bins) of a 1 s clip; the model input is [1, *feature_shape, 1]."""
        return (self.num_frames, self.num_features)

    @property
    def downsample_factor(self) -> int:
        return SOURCE_RATE_HZ // self.sampling_rate

    def describe(self) -> str:
        kind = f"{self.num_coefficients} MFCC" if self.num_coefficients else "log-Mel"
        return (f"{self.sampling_rate} Hz, frame {self.frame_length_in_s * 1000:g}/{self.frame_step_in_s * 1000:g} ms "
                f"({self.frame_length}/{self.frame_step} samples), {self.num_mel_bins} mel "
                f"{self.lower_frequency:g}-{self.upper_frequency:g} Hz, {kind} -> {self.num_frames}x{self.num_features}")


def args_from_course_flags(flags: str) -> dict:
    """PREPROCESSING_ARGS from the flags of the course's kws_latency.py (2020/21-2021/22), with its defaults."""
    import argparse
    import shlex

    p = argparse.ArgumentParser(prog="kws_latency.py", add_help=False, exit_on_error=False)
    p.add_argument("--rate", type=int, default=16000)
    p.add_argument("--mfcc", action="store_true")
    p.add_argument("--resize", type=int, default=32)
    p.add_argument("--length", type=int, default=640)
    p.add_argument("--stride", type=int, default=320)
    p.add_argument("--bins", type=int, default=40)
    p.add_argument("--coeff", type=int, default=10)
    p.add_argument("--lower-frequency", type=float, default=20.0)
    p.add_argument("--upper-frequency", type=float, default=4000.0)
    p.add_argument("--model")
    try:
        a, unknown = p.parse_known_args(shlex.split(flags))
    except (argparse.ArgumentError, ValueError) as e:
        raise HarnessError(f"--kws-flags {flags!r}: {e}") from None
    if unknown:
        raise HarnessError(f"--kws-flags {flags!r}: unknown flag {unknown[0]!r}")
    if not a.mfcc:
        raise HarnessError(f"--kws-flags {flags!r}: only the --mfcc path is supported (the STFT-resize path is not)")
    return {"sampling_rate": a.rate, "frame_length_in_s": a.length / a.rate, "frame_step_in_s": a.stride / a.rate,
            "num_mel_bins": a.bins, "lower_frequency": a.lower_frequency, "upper_frequency": a.upper_frequency,
            "num_coefficients": a.coeff}
