"""The course's split lists and labels (found or downloaded, sha256-checked), keyword selection, the hash split.

Every problem raises a one-line HarnessError naming the file and line; nothing is silently dropped.
"""
from __future__ import annotations

import ast
import hashlib
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from harness.core.errors import HarnessError
from harness.core.folds import fold_parts
from harness.toolkit.datasets import cache_dir, ensure_download, placement_hint
from tasks.kws.corpus import DOWNLOADS_DIR, Corpus, Item, _origin  # noqa: F401
from tasks.kws.decode import _one_line

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



def split_file_name(split: str) -> str:
    return f"kws_{split}_split.txt"

# --------------------------------------------------------------------------------------------
# Split lists and labels


class SplitList(list):
    """A list of (label, stem) that remembers where each entry came from (file and line)."""

    def __init__(self, items: Iterable[Item] = (), path: Path | None = None, lines: Sequence[int] = ()):
        super().__init__(items)
        self.path = path
        self.lines = list(lines)


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


def speaker(item: Item) -> str:
    """The speaker id of a clip: its stem before `_nohash_`."""
    return re.sub(r"_nohash_.*$", "", item[1])


def version_splits(corpus: Corpus, data_dir, kind: str, labels: Sequence[str]) -> tuple[dict[str, SplitList], str]:
    """The constraint file's split ("hash", "course" or "course-pair") restricted to `labels`, and a line saying
    where it came from."""
    if kind == "hash":
        return hash_split(corpus, labels), "speaker-disjoint hash split (Speech Commands which_set), 10 % val, 10 % test"
    folder = find_split_lists(data_dir)
    source = f"course split lists {folder}" + (" restricted to the keyword pair (substitute for the course's msc-* folders)"
                                               if kind == "course-pair" else "")
    lists = load_split_lists(folder)
    _check_words(lists, corpus)
    return select(lists, labels), source


def _check_words(splits: Mapping[str, SplitList], corpus: Corpus) -> None:
    """A line naming a word the corpus lacks would leave the version's keywords and be dropped unseen: refuse it
    (clips of the corpus's words are checked one by one when the version reads them)."""
    words = set(corpus.labels)
    for items in splits.values():
        for i, (label, stem) in enumerate(items):
            if label not in words:
                origin = _origin(items, i)
                raise HarnessError(f"{origin + ': ' if origin else ''}clip {label}/{stem}.wav names no word of the "
                                   f"corpus {corpus.root} ({', '.join(sorted(words))})")


def fold_splits(splits: Mapping[str, SplitList], source: str, fold: int, folds: int) -> tuple[dict, str]:
    """Cross-validation fold `fold` of `folds`: train + val re-partitioned by speaker into train, val (what
    training chooses on) and held-out (what the fold is measured on); the test split kept."""
    train, val, held = fold_parts(list(splits["train"]) + list(splits["val"]), speaker, fold, folds)
    return ({"train": SplitList(train), "val": SplitList(val), "held-out": SplitList(held), "test": splits["test"]},
            f"{source}; cross-validation fold {fold + 1} of {folds} over train + val, grouped by speaker "
            f"(epochs chosen on {len({speaker(i) for i in val})} kept speakers)")


def which_set(stem: str, val_pct: float, test_pct: float) -> str:
    """Speech Commands' hash split: the speaker id (stem before `_nohash_`) decides, so speakers never straddle."""
    speaker_id = speaker(("", stem))
    hashed = int(hashlib.sha1(speaker_id.encode()).hexdigest(), 16)
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
