"""One readable copy of mini Speech Commands: a zip, a WAV tree or a FLAC tree, found or downloaded.

Clips are identified by (label, stem), e.g. ("down", "baeac2ba_nohash_0"), whatever the container or extension.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from harness.core.errors import HarnessError
from harness.toolkit.datasets import cache_dir, ensure_download, placement_hint
from tasks.kws.decode import AUDIO_SUFFIXES, CLIP_SAMPLES, SAMPLE_RATE_HZ, decode_clip  # noqa: F401

CORPUS_DIR_NAME = "mini_speech_commands"
CORPUS_ZIP_NAME = "mini_speech_commands.zip"
CORPUS_URL = "http://storage.googleapis.com/download.tensorflow.org/data/mini_speech_commands.zip"
DOWNLOADS_DIR = "downloads"  # under cache_dir(), shared with the other tasks
CORPUS_CLIPS = 8000  # no official checksum is known: the member count is what we can verify

Item = tuple[str, str]  # (label, stem)


def _origin(items: Sequence[Item], index: int) -> str | None:
    path, lines = getattr(items, "path", None), getattr(items, "lines", ())  # a SplitList knows its file and lines
    if path is not None and index < len(lines):
        return f"{path}:{lines[index]}"
    return None



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
