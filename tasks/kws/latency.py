"""The keyword-spotting latency protocols of the course editions: schema, and timing of a deployed model.

A protocol (constraint file, [kws.latency]) says what is timed (inference or total), the statistic, the runs
and discarded runs, the input (the course script's random 48 kHz clip, a fixed 16 kHz clip, or the real test
clips) and whether decoding a clip file counts. The harness adds untimed warm-up runs and says so.
"""
from __future__ import annotations

import time

import numpy as np

from harness.core.config import Field, in_range, one_of
from harness.toolkit.measure import latency as lat
from tasks.kws import data as msc
from tasks.kws import features as feat

INPUTS = ("uniform-48k", "normal-16k", "test-clips")
SCHEMA = {
    "max_ms": Field(float, default=None, check=lambda v: None if v is None or v > 0 else "must be > 0"),
    "scope": Field(str, check=one_of("total", "inference")),
    "statistic": Field(str, check=one_of("mean", "median")),
    "runs": Field(int, check=in_range(1)),
    "discard": Field(int, default=0, check=in_range(0)),
    "input": Field(str, check=one_of(*INPUTS)),
    "read_output": Field(bool, default=True),
    "decode_in_timer": Field(bool, default=False, doc="test-clips: WAV/FLAC decode + zero padding inside the timed region"),
    "sleep_s": Field(float, default=0.0, check=in_range(0), doc="pause between runs (course: 0.1 s on the device)"),
    "device": Field(str, doc="where the course measured it; our host is reported beside it"),
    "source": Field(str),
}


class RawAudio:
    """The input of a file whose front end is inside it: the audio itself at 16 kHz (resampled from 48 kHz when the
    protocol records at 48 kHz), float32 in [-1, 1) or int16 PCM. Same methods as the feature extractor."""

    def __init__(self, int16: bool):
        self.int16 = int16

    def _out(self, audio):
        audio = np.asarray(audio, np.float32)
        return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16) if self.int16 else audio

    def __call__(self, audio):
        return self._out(audio)

    def from_int16(self, audio):
        return np.asarray(audio, np.int16) if self.int16 else np.asarray(audio, np.float32) * np.float32(1.0 / 32768.0)

    def resample_from(self, audio, source_rate: int):
        return self._out(feat.resample(np.asarray(audio, np.float32), source_rate // feat.SOURCE_RATE_HZ))


def measure(corpus, args, runner, proto, items, raw: RawAudio | None = None) -> dict:
    """Time the deployed model under `proto` on this host; returns the figures and a one-line protocol text.

    raw: the file takes audio (its front end inside): the timed preprocessing is only what remains outside."""
    extractor = raw or feat.NumpyFeatures(args)
    shape = runner.input_shape
    interp = runner.interpreter
    read_out = proto["read_output"]
    rng = np.random.default_rng(0)
    fixed_normal = rng.standard_normal(16000).astype(np.float32)
    clips, transcoded = [], False
    if proto["input"] == "test-clips":
        clips = [corpus.raw(label, stem) for label, stem in items]  # file reads stay outside the timer, as the course's
        if not proto["decode_in_timer"]:  # decoding and padding happen before the timer starts
            clips = [msc.decode_clip(data, corpus.clip_path(*item)) for data, item in zip(clips, items)]
        else:  # the course timed WAV decoding: a FLAC copy of the clips would time a slower decoder (~5x here)
            transcoded = not all(msc.is_wav(data) for data in clips)
            clips = [msc.as_wav(data, corpus.clip_path(*item)) for data, item in zip(clips, items)]

    def preprocess(i):
        if proto["input"] == "uniform-48k":
            x = rng.uniform(0.0, 1.0, 48000).astype(np.float32)  # a fresh random clip per run, as the course script
            t0 = time.perf_counter()
            f = extractor.resample_from(x, 48000)
        elif proto["input"] == "normal-16k":
            t0 = time.perf_counter()
            f = extractor(fixed_normal / np.float32(32767.0))
        elif proto["decode_in_timer"]:
            data = clips[i % len(clips)]
            t0 = time.perf_counter()
            f = extractor.from_int16(msc.decode_clip(data, "latency clip"))
        else:
            audio = clips[i % len(clips)]
            t0 = time.perf_counter()
            f = extractor.from_int16(audio)
        f = f.reshape(shape)
        return f, time.perf_counter() - t0

    def step(i):
        f, pre = preprocess(i)
        t0 = time.perf_counter()
        runner.set(f)  # quantizes the features first when the file takes int8/uint8 input: timed, as on a device
        interp.invoke()
        if read_out:
            runner.get()
        return pre, time.perf_counter() - t0

    runs = proto["runs"] * (len(clips) if proto["input"] == "test-clips" else 1)
    samples = lat.time_runs(step, runs, proto["discard"], sleep_s=proto["sleep_s"])
    res = lat.summarize(samples, proto["statistic"])
    res["metric_ms"] = res["model_ms"] if proto["scope"] == "inference" else res["total_ms"]
    res["harness_warmup_runs"] = lat.HARNESS_WARMUP
    res["protocol_text"] = (
        f"{proto['scope']} latency, {proto['statistic']} of {res['n']} runs "
        f"({proto['discard']} discarded), input {proto['input']}"
        + (f" (decoding {'inside' if proto['decode_in_timer'] else 'outside'} the timer"
           + ("; clips transcoded from FLAC to WAV before timing, as the course decoded WAV files" if transcoded else "")
           + ")" if proto["input"] == "test-clips" else "")
        + f", output {'read' if read_out else 'not read'}; "
        f"+{lat.HARNESS_WARMUP} untimed warm-up runs; course device: {proto['device']}")
    res["eager_tf_signal_total_median_ms"] = None if raw else eager_total_median_ms(args, runner, proto)
    return res


def eager_total_median_ms(args, runner, proto, runs: int = 30) -> float:
    """The course-style pipeline (eager tf.signal + the same model) timed in the same run, for comparison."""
    rng = np.random.default_rng(1)
    from_48k = proto["input"] == "uniform-48k"

    def step(_):
        x = rng.uniform(0.0, 1.0, 48000 if from_48k else 16000).astype(np.float32)
        t0 = time.perf_counter()
        if from_48k:
            x = feat.resample(x, 48000 // 16000)  # the course resamples with scipy before tf.signal
        f = feat.tf_reference_features(x, args).reshape(runner.input_shape)
        t1 = time.perf_counter()
        runner(f)
        return t1 - t0, time.perf_counter() - t1

    return lat.summarize(lat.time_runs(step, runs, warmup=3), "median")["total_median_ms"]
