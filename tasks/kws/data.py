"""Mini Speech Commands for the keyword-spotting task: the corpus, clip decoding, split lists, and audio batches.

The pieces live in corpus.py, decode.py and splits.py; this module gathers them (callers import `data as msc`)
and adds what reads audio for a split.
"""
from __future__ import annotations

import sys
from typing import Iterator, Sequence

import numpy as np

from harness.core.errors import HarnessError
from tasks.kws.corpus import *  # noqa: F401,F403
from tasks.kws.corpus import Corpus, Item, _open_official_zip  # noqa: F401
from tasks.kws.decode import *  # noqa: F401,F403
from tasks.kws.decode import CLIP_SAMPLES, _check_format, _check_wav_complete, _one_line  # noqa: F401
from tasks.kws.splits import *  # noqa: F401,F403
from tasks.kws.splits import _check_disjoint  # noqa: F401

# --------------------------------------------------------------------------------------------
# Audio


def iter_audio(corpus: Corpus, items: Sequence[Item]) -> Iterator[np.ndarray]:
    """Yield each clip as int16 [16000]; the whole list is checked against the corpus first."""
    corpus.check(items)
    for label, stem in items:
        yield corpus.read(label, stem)


def label_indices(items: Sequence[Item], labels: Sequence[str]) -> np.ndarray:
    """int32 [N] class indices of `items` in the order of `labels`."""
    index = {label: i for i, label in enumerate(labels)}
    try:
        return np.fromiter((index[label] for label, _ in items), dtype=np.int32, count=len(items))
    except KeyError as e:
        raise HarnessError(f"clip label {e.args[0]!r} is not in the label list {list(labels)}") from None


def progress(iterable, total: int, desc: str):
    """tqdm bar on stderr for long loops only (disabled when stderr is not a terminal)."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="clip", file=sys.stderr,
                disable=None if total >= 500 else True, leave=False)


def load_audio(corpus: Corpus, items: Sequence[Item], labels: Sequence[str],
               desc: str = "reading clips") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(audio int16 [N, 16000], y int32 [N], names ["<label>/<stem>"]) in the order of `items`."""
    y = label_indices(items, labels)
    audio = np.zeros((len(items), CLIP_SAMPLES), dtype=np.int16)
    for i, clip in enumerate(progress(iter_audio(corpus, items), len(items), desc)):
        audio[i] = clip
    names = [f"{label}/{stem}" for label, stem in items]
    return audio, y, names
