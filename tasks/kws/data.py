"""Mini Speech Commands access: corpus (zip, WAV or FLAC tree), course split lists, labels, audio.

Clips are identified by (label, stem), e.g. ("down", "baeac2ba_nohash_0"), so the same split list
works whatever the container or the audio extension. Every problem raises a one-line HarnessError
naming the file (and line, for split lists); nothing is silently dropped.
"""
from __future__ import annotations

import ast
import hashlib
import io
import os
import re
import struct
import sys
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from harness.core.errors import HarnessError
from harness.toolkit.datasets import cache_dir, ensure_download, placement_hint

SAMPLE_RATE_HZ = 16000
CLIP_SAMPLES = 16000  # 1 s at 16 kHz: every clip is zero-padded at the end to this length
AUDIO_SUFFIXES = (".wav", ".flac")
CORPUS_DIR_NAME = "mini_speech_commands"
CORPUS_ZIP_NAME = "mini_speech_commands.zip"
CORPUS_URL = "http://storage.googleapis.com/download.tensorflow.org/data/mini_speech_commands.zip"
DOWNLOADS_DIR = "downloads"  # under cache_dir(), shared with the other tasks
CORPUS_CLIPS = 8000  # no official checksum is known: the member count is what we can verify

SPLIT_NAMES = ("train", "val", "test")
SPLITS_DIR_NAME = "ml4iot_kws_splits"
LABELS_FILE = "labels.txt"
_SPLITS_URL = "https://raw.githubusercontent.com/paoloalb/ML4IOT/d1b6a1abb1a36dc92f4a23208f5318ff6e457189/HW2/es2"
_LABELS_URL = ("https://raw.githubusercontent.com/DrDoof14/ML4IOT/"
               "5797c9c3c44e7a471709a68dfa16978d0f181128/HW3/Prerequisite/labels.txt")
# file name -> (pinned URL, sha256); values from the data README.
SPLIT_FILES: dict[str, tuple[str, str]] = {
    "kws_train_split.txt": (f"{_SPLITS_URL}/kws_train_split.txt",
                            "f42a7ae04228b205a868e0ccfc33dc4e03b097ff7dea88ace4c275dd231dcfd8"),
    "kws_val_split.txt": (f"{_SPLITS_URL}/kws_val_split.txt",
                          "e1c660a1de7ff6fe764d70cf5e5e9dba67301e5d12ba245d1109619fa8449dc0"),
    "kws_test_split.txt": (f"{_SPLITS_URL}/kws_test_split.txt",
                           "b6728d58431ff3314938c27e7d396e2432f4ddc875404459cd7899ca3d332d30"),
    LABELS_FILE: (_LABELS_URL, "2f2f10a6ffd4fe62cf5ee91a8825b0f0d1442d9df78ae7d8b004d58505848ac5"),
}

Item = tuple[str, str]  # (label, stem)


def split_file_name(split: str) -> str:
    return f"kws_{split}_split.txt"


# --------------------------------------------------------------------------------------------
# Corpus


@dataclass(frozen=True)
class _Member:
    relpath: str  # "<label>/<stem>.<ext>", relative to the corpus root
    name: str  # file path (folder) or member name (zip)
    size_bytes: int | None  # known up front for zips; folders stat on demand


@dataclass
class Corpus:
    """One readable copy of the corpus.

    kind: "zip", "wav" or "flac" ("wav+flac" for a mixed folder); root: the folder holding the label
    folders, or the zip file itself.
    """

    kind: str
    root: Path
    _members: dict[Item, _Member] = field(repr=False)
    _zip: zipfile.ZipFile | None = field(default=None, repr=False)

    @property
    def labels(self) -> list[str]:
        return sorted({label for label, _ in self._members})

    def items(self, labels: Iterable[str] | None = None) -> list[Item]:
        """All (label, stem) pairs, sorted, optionally restricted to `labels`."""
        wanted = None if labels is None else set(labels)
        return sorted(k for k in self._members if wanted is None or k[0] in wanted)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, item: Item) -> bool:
        return tuple(item) in self._members

    def describe(self) -> str:
        what = "zip archive" if self.kind == "zip" else f"{self.kind} folder"
        return f"{what} {self.root} ({len(self)} clips)"

    def clip_path(self, label: str, stem: str) -> str:
        """Human-readable location of a clip, for messages."""
        member = self._member(label, stem)
        return f"{self.root}:{member.name}" if self._zip is not None else member.name

    def raw(self, label: str, stem: str) -> bytes:
        """The clip file's bytes (WAV or FLAC), undecoded: what a device reads from storage."""
        member = self._member(label, stem)
        try:
            return self._zip.read(member.name) if self._zip is not None else Path(member.name).read_bytes()
        except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error) as e:
            raise HarnessError(f"cannot read clip {self.clip_path(label, stem)} ({e})") from e

    def read(self, label: str, stem: str) -> np.ndarray:
        """The clip as int16 [16000] samples at 16 kHz, zero-padded at the end (course convention)."""
        return decode_clip(self.raw(label, stem), self.clip_path(label, stem))

    def fingerprint(self, items: Iterable[Item] | None = None) -> str:
        """sha256 over the corpus kind and the sorted (relative path, sha256 of the file's bytes) of `items`.

        Content, not size: a clip overwritten with other bytes of the same length must change every key
        derived from it (feature cache, build cache)."""
        if items is not None:
            self.check(items)  # before sorting: a SplitList still knows each entry's file and line
        chosen = self.items() if items is None else sorted({tuple(i) for i in items})
        digest = hashlib.sha256(self.kind.encode())
        for item in chosen:
            member = self._members[item]
            digest.update(f"\n{member.relpath}\t{self._content_sha256(item)}".encode())
        return digest.hexdigest()

    def _content_sha256(self, item: Item) -> str:
        memo = self.__dict__.setdefault("_sha_memo", {})  # per process: the files are read once
        if item not in memo:
            memo[item] = hashlib.sha256(self.raw(*item)).hexdigest()
        return memo[item]

    def check(self, items: Sequence[Item]) -> None:
        """Raise if an item is not in the corpus, naming its split-list file and line when known."""
        for i, item in enumerate(items):
            if tuple(item) not in self._members:
                label, stem = item
                origin = _origin(items, i)
                prefix = f"{origin}: " if origin else ""
                raise HarnessError(f"{prefix}clip {label}/{stem}.wav is not in the corpus {self.root}")

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def _member(self, label: str, stem: str) -> _Member:
        try:
            return self._members[(label, stem)]
        except KeyError:
            raise HarnessError(f"clip {label}/{stem}.wav is not in the corpus {self.root}") from None

    def _size(self, member: _Member) -> int:
        if member.size_bytes is not None:
            return member.size_bytes
        try:
            return os.stat(member.name).st_size
        except OSError as e:
            raise HarnessError(f"cannot read clip {member.name} ({e.strerror or e})") from e


def open_folder(root: str | os.PathLike) -> Corpus:
    """Index a folder holding `<label>/<stem>.wav|.flac` (README.md and hidden files ignored)."""
    root = Path(root)
    members: dict[Item, _Member] = {}
    suffixes: set[str] = set()
    try:
        label_dirs = sorted((e for e in os.scandir(root) if e.is_dir() and not e.name.startswith((".", "_"))),
                            key=lambda e: e.name)
        for label_dir in label_dirs:
            for entry in os.scandir(label_dir.path):
                stem, suffix = os.path.splitext(entry.name)
                if suffix.lower() not in AUDIO_SUFFIXES or entry.name.startswith("."):
                    continue
                suffixes.add(suffix.lower())
                key = (label_dir.name, stem)
                # A folder holding both forms of a clip: prefer the original WAV.
                if key in members and suffix.lower() != ".wav":
                    continue
                members[key] = _Member(f"{label_dir.name}/{entry.name}", entry.path, None)
    except OSError as e:
        raise HarnessError(f"cannot list corpus folder {root} ({e.strerror or e})") from e
    if not members:
        raise HarnessError(f"corpus folder {root} holds no <label>/<id>.wav or .flac clips")
    kind = "+".join(s.lstrip(".") for s in sorted(suffixes, key=AUDIO_SUFFIXES.index))
    return Corpus(kind, root, members)


def open_zip(path: str | os.PathLike) -> Corpus:
    """Index a zip of `[<prefix>/]<label>/<stem>.wav|.flac` without extracting it."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise HarnessError(f"cannot open corpus archive {path} ({e})") from e
    members: dict[Item, _Member] = {}
    prefixes: set[str] = set()
    for info in zf.infolist():
        parts = info.filename.split("/")
        # Skip folders, macOS resource forks (__MACOSX/, ._name) and non-audio files.
        if info.is_dir() or len(parts) < 2 or parts[0] == "__MACOSX" or parts[-1].startswith("."):
            continue
        stem, suffix = os.path.splitext(parts[-1])
        if suffix.lower() not in AUDIO_SUFFIXES:
            continue
        label = parts[-2]
        prefixes.add("/".join(parts[:-2]))
        members[(label, stem)] = _Member(f"{label}/{parts[-1]}", info.filename, info.file_size)
    if not members:
        zf.close()
        raise HarnessError(f"corpus archive {path} holds no <label>/<id>.wav clips")
    if len(prefixes) > 1:
        zf.close()
        raise HarnessError(f"corpus archive {path} has clips under several roots: {sorted(prefixes)}")
    return Corpus("zip", path, members, zf)


def find_corpus(data_dir: str | os.PathLike, *, allow_download: bool = True) -> Corpus:
    """First corpus found in `data_dir`, else a cached or freshly downloaded official archive.

    Searched, in order: <d>/mini_speech_commands/, <d>/mini_speech_commands_flac/mini_speech_commands/,
    <d>/mini_speech_commands.zip, then <cache>/downloads/mini_speech_commands.zip.
    """
    data_dir = Path(data_dir)
    for folder in (data_dir / CORPUS_DIR_NAME, data_dir / f"{CORPUS_DIR_NAME}_flac" / CORPUS_DIR_NAME):
        if folder.is_dir():
            return open_folder(folder)
    if (data_dir / CORPUS_ZIP_NAME).is_file():
        return open_zip(data_dir / CORPUS_ZIP_NAME)
    hint = placement_hint(f"{CORPUS_ZIP_NAME} (or its unpacked {CORPUS_DIR_NAME}/ folder)", data_dir)
    cached = cache_dir() / DOWNLOADS_DIR / CORPUS_ZIP_NAME
    if not cached.is_file():
        if not allow_download:
            raise HarnessError(f"mini Speech Commands not found in {data_dir}; {hint}")
        ensure_download(CORPUS_URL, cached, None, CORPUS_ZIP_NAME, offline_hint=hint)
    return _open_official_zip(cached)


def _open_official_zip(path: Path) -> Corpus:
    """Open the downloaded archive; a wrong clip count means a bad download: delete it."""
    try:
        corpus = open_zip(path)
    except HarnessError:
        path.unlink(missing_ok=True)
        raise
    if len(corpus) != CORPUS_CLIPS:
        corpus.close()
        path.unlink(missing_ok=True)
        raise HarnessError(f"downloaded {path} holds {len(corpus)} clips, expected {CORPUS_CLIPS}; deleted it, "
                           f"try again or put {CORPUS_ZIP_NAME} in the data folder")
    return corpus


# --------------------------------------------------------------------------------------------
# Decoding


def decode_clip(data: bytes, where: str) -> np.ndarray:
    """Decode WAV/FLAC bytes into int16 [16000]; any format problem names `where`."""
    import soundfile as sf

    if not data:
        raise HarnessError(f"clip {where} is empty (0 bytes)")
    if data[:4] in (b"RIFF", b"RIFX"):
        _check_wav_complete(data, where)
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, channels, subtype, frames = f.samplerate, f.channels, f.subtype, f.frames
            _check_format(where, rate, channels, subtype, frames)
            samples = f.read(dtype="int16", always_2d=False)
    except sf.SoundFileError as e:
        raise HarnessError(f"clip {where} is not readable audio ({_one_line(e)})") from e
    if len(samples) != frames:
        raise HarnessError(f"clip {where} is truncated: {len(samples)} of {frames} samples decoded")
    clip = np.zeros(CLIP_SAMPLES, dtype=np.int16)
    clip[: len(samples)] = samples
    return clip


def _check_format(where: str, rate: int, channels: int, subtype: str, frames: int) -> None:
    if rate != SAMPLE_RATE_HZ:
        raise HarnessError(f"clip {where} is sampled at {rate} Hz, expected {SAMPLE_RATE_HZ} Hz")
    if channels != 1:
        raise HarnessError(f"clip {where} has {channels} channels, expected mono")
    if subtype != "PCM_16":
        raise HarnessError(f"clip {where} is {subtype}, expected 16-bit PCM (PCM_16)")
    if frames < 1:
        raise HarnessError(f"clip {where} holds no samples")
    if frames > CLIP_SAMPLES:
        raise HarnessError(f"clip {where} holds {frames} samples, more than 1 s ({CLIP_SAMPLES} samples)")


def _check_wav_complete(data: bytes, where: str) -> None:
    """libsndfile silently shortens a WAV whose data chunk is cut off: compare with the header."""
    fmt = "<I" if data[:4] == b"RIFF" else ">I"
    if len(data) < 12 or data[8:12] != b"WAVE":
        raise HarnessError(f"clip {where} is not a WAVE file")
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset:offset + 4]
        (size,) = struct.unpack(fmt, data[offset + 4:offset + 8])
        if chunk_id == b"data":
            available = len(data) - offset - 8
            if size != 0xFFFFFFFF and size > available:  # 0xFFFFFFFF: length unknown (streamed)
                raise HarnessError(f"clip {where} is truncated: header announces {size} data bytes, "
                                   f"file holds {available}")
            return
        offset += 8 + size + (size & 1)
    raise HarnessError(f"clip {where} is truncated: no WAV data chunk")


def _one_line(e: Exception) -> str:
    text = re.sub(r"Error opening <[^>]*>: ", "", str(e))  # soundfile names the in-memory buffer: noise
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# Split lists and labels


class SplitList(list):
    """A list of (label, stem) that remembers where each entry came from (file and line)."""

    def __init__(self, items: Iterable[Item] = (), path: Path | None = None, lines: Sequence[int] = ()):
        super().__init__(items)
        self.path = path
        self.lines = list(lines)


def _origin(items: Sequence[Item], index: int) -> str | None:
    if isinstance(items, SplitList) and items.path is not None and index < len(items.lines):
        return f"{items.path}:{items.lines[index]}"
    return None


_LINE_RE = re.compile(r"^(?:.*/)?([^/]+)/([^/]+)\.(?:wav|flac)$", re.IGNORECASE)


def parse_split_file(path: str | os.PathLike) -> SplitList:
    """Parse one split list: lines `<any prefix>/<label>/<stem>.wav`; CRLF and backslashes accepted."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise HarnessError(f"cannot read split list {path} ({e})") from e
    items, lines, seen = [], [], {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().replace("\\", "/")
        if not line:
            continue
        match = _LINE_RE.match(line)
        if not match:
            raise HarnessError(f"{path}:{lineno}: malformed split line {raw.strip()!r}, "
                               f"expected .../<label>/<id>.wav")
        item = (match.group(1), match.group(2))
        if item in seen:
            raise HarnessError(f"{path}:{lineno}: clip {item[0]}/{item[1]} already listed at line {seen[item]}")
        seen[item] = lineno
        items.append(item)
        lines.append(lineno)
    if not items:
        raise HarnessError(f"split list {path} is empty")
    return SplitList(items, path, lines)


def load_split_lists(splits_dir: str | os.PathLike) -> dict[str, SplitList]:
    """{"train", "val", "test"} -> (label, stem) lists from kws_<split>_split.txt; the lists must be disjoint."""
    splits_dir = Path(splits_dir)
    splits = {}
    for split in SPLIT_NAMES:
        path = splits_dir / split_file_name(split)
        if not path.is_file():
            raise HarnessError(f"split list {path} not found")
        splits[split] = parse_split_file(path)
    _check_disjoint(splits)
    return splits


def _check_disjoint(splits: Mapping[str, SplitList]) -> None:
    owner: dict[Item, str] = {}
    for split, items in splits.items():
        for i, item in enumerate(items):
            if item in owner:
                raise HarnessError(f"{_origin(items, i) or split}: clip {item[0]}/{item[1]} is also in the "
                                   f"{owner[item]} split")
            owner[item] = split


def find_split_lists(data_dir: str | os.PathLike, *, allow_download: bool = True) -> Path:
    """Folder holding the three course split lists and labels.txt.

    <data_dir>/ml4iot_kws_splits/ if present, else <cache>/downloads/ml4iot_kws_splits/ filled from pinned
    public copies (sha256-checked).
    """
    local = Path(data_dir) / SPLITS_DIR_NAME
    if local.is_dir():
        missing = [name for name in SPLIT_FILES if not (local / name).is_file()]
        if missing:
            raise HarnessError(f"split folder {local} lacks {', '.join(missing)}")
        return local
    target = cache_dir() / DOWNLOADS_DIR / SPLITS_DIR_NAME
    hint = placement_hint(f"{SPLITS_DIR_NAME}/ ({', '.join(SPLIT_FILES)})", data_dir)
    for name, (url, sha256) in SPLIT_FILES.items():
        if not allow_download and not (target / name).is_file():
            raise HarnessError(f"split list {name} not found in {local}; {hint}")
        ensure_download(url, target / name, sha256, name, offline_hint=hint)
    return target


def load_labels(path: str | os.PathLike) -> list[str]:
    """Parse labels.txt: one Python list of distinct label names, e.g. ['stop', 'up', ...]."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise HarnessError(f"cannot read labels file {path} ({e})") from e
    try:
        labels = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError) as e:
        raise HarnessError(f"labels file {path} is not a Python list of strings ({_one_line(e)})") from e
    if not isinstance(labels, list) or not labels or not all(isinstance(s, str) and s for s in labels):
        raise HarnessError(f"labels file {path} is not a non-empty Python list of strings")
    dupes = [s for s, n in Counter(labels).items() if n > 1]
    if dupes:
        raise HarnessError(f"labels file {path} repeats {dupes}")
    return labels


def select(splits: Mapping[str, Sequence[Item]], keywords: Sequence[str]) -> dict[str, SplitList]:
    """Restrict every split to `keywords`; a keyword with no clip in some split is an error."""
    return {name: select_items(items, keywords, name) for name, items in splits.items()}


def select_items(items: Sequence[Item], keywords: Sequence[str], split_name: str) -> SplitList:
    wanted = list(dict.fromkeys(keywords))
    if not wanted:
        raise HarnessError(f"no keywords given for the {split_name} split")
    keep = [i for i, (label, _) in enumerate(items) if label in wanted]
    counts = Counter(items[i][0] for i in keep)
    for keyword in wanted:
        if counts[keyword] == 0:
            source = getattr(items, "path", None)
            raise HarnessError(f"keyword {keyword!r} has no clips in the {split_name} split"
                               + (f" ({source})" if source else ""))
    path = items.path if isinstance(items, SplitList) else None
    has_lines = isinstance(items, SplitList) and len(items.lines) == len(items)
    lines = [items.lines[i] for i in keep] if has_lines else []
    return SplitList([tuple(items[i]) for i in keep], path, lines)


_MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # ~134M, as in the Speech Commands `which_set`


def which_set(stem: str, val_pct: float, test_pct: float) -> str:
    """Speech Commands' hash split: the speaker id (stem before `_nohash_`) decides, so speakers never straddle."""
    speaker = re.sub(r"_nohash_.*$", "", stem)
    hashed = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    pct = (hashed % (_MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / _MAX_NUM_WAVS_PER_CLASS)
    if pct < val_pct:
        return "val"
    if pct < val_pct + test_pct:
        return "test"
    return "train"


def hash_split(corpus: Corpus, keywords: Sequence[str] | None = None, val_pct: float = 10,
               test_pct: float = 10) -> dict[str, SplitList]:
    """Deterministic, speaker-disjoint split of the corpus (for users without the course lists)."""
    if not (0 <= val_pct and 0 <= test_pct and val_pct + test_pct < 100):
        raise HarnessError(f"hash split percentages val={val_pct}, test={test_pct} must be >= 0 and sum below 100")
    keywords = corpus.labels if keywords is None else list(keywords)
    splits = {name: SplitList() for name in SPLIT_NAMES}
    for label, stem in corpus.items(keywords):
        splits[which_set(stem, val_pct, test_pct)].append((label, stem))
    return select(splits, keywords)


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
