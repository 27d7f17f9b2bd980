"""The on-disk feature cache: keyed by content, verified by sha256 on every read."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Sequence

import numpy as np

from harness.toolkit.atomic import write_bytes
from harness.toolkit.datasets import cache_dir
from tasks.kws.features.args import PreprocessingArgs
from tasks.kws.features.constants import _BATCH_CLIPS, FEATURES_VERSION, SOURCE_RATE_HZ
from tasks.kws.features.numpy_pipeline import NumpyFeatures

# --------------------------------------------------------------------------------------------
# Training-set feature cache


def features_cache_key(args: PreprocessingArgs, corpus_fingerprint: str, items: Sequence[tuple[str, str]],
                       labels: Sequence[str], speed: float = 1.0) -> str:
    """Hash of everything the cached arrays depend on: args, the bytes read, row order, label order, code version,
    the playback speed of a speed-perturbed copy (absent for the clips as recorded, so their keys stay put)."""
    payload = {**({"speed": speed} if speed != 1.0 else {}),
        "version": FEATURES_VERSION,
        "args": args.to_dict(),
        "corpus": corpus_fingerprint,
        "order": hashlib.sha256("\n".join(f"{a}/{b}" for a, b in items).encode()).hexdigest(),
        "labels": list(labels),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def cached_features(corpus, items: Sequence[tuple[str, str]], labels: Sequence[str], args: PreprocessingArgs,
                    split_name: str, use_cache: bool = True, speed: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 [N, frames, C, 1], y int32 [N]) for `items` (played `speed` times faster, for augmentation),
    cached under <cache>/kws_features/.

    Clips are decoded and featurised in chunks, so the raw audio of a whole split is never held.
    """
    from tasks.kws.augment import change_speed
    from tasks.kws.data import iter_audio, label_indices, progress

    y = label_indices(items, labels)
    key = features_cache_key(args, corpus.fingerprint(items), items, labels, speed)
    name = split_name if speed == 1.0 else f"{split_name}-speed{speed:g}"
    path = cache_dir() / "kws_features" / f"{name}-{key}.npz"
    shape = (len(items), *args.feature_shape, 1)
    cached = _load_cached(path, shape, y) if use_cache else None
    if cached is not None:
        return cached, y
    extractor = NumpyFeatures(args)
    X = np.empty(shape, dtype=np.float32)
    buffer = np.empty((_BATCH_CLIPS, SOURCE_RATE_HZ), dtype=np.int16)
    filled = done = 0
    for clip in progress(iter_audio(corpus, items), len(items), f"{name} features"):
        buffer[filled] = clip if speed == 1.0 else change_speed(clip, speed)
        filled += 1
        if filled == _BATCH_CLIPS:
            X[done:done + filled] = extractor.batch(buffer)
            done, filled = done + filled, 0
    if filled:
        X[done:done + filled] = extractor.batch(buffer[:filled])
    blob = io.BytesIO()
    np.savez(blob, X=X, y=y, sha256=np.array(hashlib.sha256(X.tobytes()).hexdigest()))
    try:
        write_bytes(path, blob.getvalue())
    except OSError as e:  # a cache saves time only: a read-only or full cache folder must not stop the work
        print(f"  feature cache {path} cannot be written ({e.strerror or e}); going on without it", flush=True)
    return X, y


def _load_cached(path, shape: tuple[int, ...], y: np.ndarray) -> np.ndarray | None:
    """The cached X if the file is there and consistent; a damaged cache is reported in one line and ignored (the
    caller recomputes and rewrites it)."""
    if not path.is_file():
        return None
    try:
        X, y_cached, digest = _read_checked(path, {"X": (shape, np.dtype(np.float32)), "y": (y.shape, y.dtype),
                                                   "sha256": ((), np.dtype("<U64"))})
    except Exception as e:  # whatever a damaged file raises (zip, npy, memory, unknown codec); not an interrupt
        print(f"  feature cache {path} is unreadable ({type(e).__name__}); recomputing", flush=True)
        return None
    if not np.array_equal(y_cached, y) or hashlib.sha256(X.tobytes()).hexdigest() != str(digest):
        print(f"  feature cache {path} does not match its record; recomputing", flush=True)
        return None
    return X


def _read_checked(path, expected: dict[str, tuple[tuple[int, ...], np.dtype]]) -> list[np.ndarray]:
    """The named arrays of an .npz, each npy header checked against its expected (shape, dtype) before the array is
    read: a damaged header could otherwise ask for petabytes."""
    with zipfile.ZipFile(path) as archive:
        for name, (shape, dtype) in expected.items():
            with archive.open(f"{name}.npy") as f:
                declared = _npy_header(f)
            if declared != (shape, False, dtype):
                raise ValueError(f"{name}: declared {declared}, expected {(shape, False, dtype)}")
    with np.load(path, allow_pickle=False) as data:  # reads the headers just checked
        return [data[name] for name in expected]


def _npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of an .npy stream, read without reading its data."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f"npy format version {version}")
