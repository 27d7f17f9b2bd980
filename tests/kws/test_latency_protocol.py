"""The keyword-spotting latency protocol: what is inside the timer, on which bytes."""
from __future__ import annotations

import numpy as np
import pytest

from harness.core.errors import HarnessError
from tasks.kws import data as msc
from tasks.kws import latency
from tasks.kws.data import find_corpus

PROTO = {"scope": "total", "statistic": "median", "runs": 1, "discard": 0, "input": "test-clips",
         "read_output": True, "decode_in_timer": True, "sleep_s": 0.0, "device": "test"}


@pytest.fixture(scope="module")
def corpus(shared_data):
    return find_corpus(shared_data)


@pytest.fixture(scope="module")
def items(corpus):
    return corpus.items(["yes"])[:4]


class _Runner:
    """An interpreter stand-in: takes raw 16 kHz audio, returns nothing worth reading."""
    input_shape = (1, 16000)

    def __init__(self):
        self.interpreter = self
        self.inputs = []

    def set(self, x):
        self.inputs.append(np.array(x))

    def invoke(self):
        pass

    def get(self):
        return np.zeros((1, 2), np.float32)


def test_as_wav_keeps_the_samples(corpus, items):
    for label, stem in items:
        raw = corpus.raw(label, stem)
        assert not msc.is_wav(raw)  # the shared copy is FLAC
        wav = msc.as_wav(raw, corpus.clip_path(label, stem))
        assert msc.is_wav(wav)
        assert np.array_equal(msc.decode_clip(wav, "wav"), msc.decode_clip(raw, "flac"))
        assert msc.as_wav(wav, "wav") is wav  # WAV stays as it is
    with pytest.raises(HarnessError, match="yes/broken.flac"):
        msc.as_wav(b"fLaC not really", "yes/broken.flac")


@pytest.mark.parametrize("in_timer", [True, False])
def test_timed_decoding_reads_wav_like_the_course(monkeypatch, corpus, items, in_timer):
    """With decoding inside the timer, every decoded buffer is WAV (the course's files), and the protocol text says
    the FLAC copies were transcoded first; the features see the same samples either way."""
    decoded = []
    real = msc.decode_clip

    def spy(data, where, pad=True):
        decoded.append(bytes(data[:4]))
        return real(data, where, pad)

    monkeypatch.setattr(msc, "decode_clip", spy)
    runner = _Runner()
    res = latency.measure(corpus, None, runner, dict(PROTO, decode_in_timer=in_timer), items,
                          raw=latency.RawAudio(int16=False))
    assert decoded and all(head == b"RIFF" for head in decoded) == in_timer
    assert ("transcoded from FLAC to WAV" in res["protocol_text"]) == in_timer
    assert res["n"] == len(items) and res["total_ms"] > 0
    expected = real(corpus.raw(*items[0]), "x").astype(np.float32) / np.float32(32768.0)
    assert np.array_equal(runner.inputs[latency.lat.HARNESS_WARMUP].reshape(-1), expected)


def test_inference_scope_times_the_model_only_and_discard_drops_runs(corpus, items):
    res = latency.measure(corpus, None, _Runner(), dict(PROTO, scope="inference", runs=2, discard=3), items,
                          raw=latency.RawAudio(int16=False))
    assert res["metric_ms"] == res["model_ms"] != res["total_ms"]
    assert res["n"] == 2 * len(items) - 3


@pytest.mark.parametrize("in_timer", [True, False])
def test_decoding_counts_in_the_preprocessing_time_only_when_the_protocol_says_so(monkeypatch, corpus, items, in_timer):
    import time

    real = msc.decode_clip

    def slow(data, where, pad=True):
        time.sleep(0.03)
        return real(data, where, pad)

    monkeypatch.setattr(msc, "decode_clip", slow)
    res = latency.measure(corpus, None, _Runner(), dict(PROTO, decode_in_timer=in_timer), items,
                          raw=latency.RawAudio(int16=False))
    assert (res["preprocessing_ms"] >= 30.0) == in_timer
    assert (res["total_ms"] >= 30.0) == in_timer
