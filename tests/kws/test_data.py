"""tasks.kws.data: course split lists, labels, the three corpus forms, clip validation, hash split."""
from __future__ import annotations

import io
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.core.errors import HarnessError
from harness.toolkit import datasets
from tasks.kws import corpus, data
from tasks.kws import splits as split_lists
from tasks.kws.data import (
    CLIP_SAMPLES,
    SplitList,
    find_corpus,
    find_split_lists,
    hash_split,
    load_audio,
    load_labels,
    load_split_lists,
    parse_split_file,
    select,
)
from tests.loopback import closed_port_url as _closed_port_url
from tests.loopback import serve as _serve

COURSE_COUNTS = {
    "train": dict(down=805, go=785, left=807, no=771, right=805, stop=810, up=816, yes=801),
    "val": dict(down=99, go=100, left=88, no=108, right=99, stop=97, up=99, yes=110),
    "test": dict(down=96, go=115, left=105, no=121, right=96, stop=93, up=85, yes=89),
}
# Real clips used to build small corpora: two full-length ones and a short one (if present).
SAMPLE_ITEMS = [("down", "004ae714_nohash_0"), ("go", "0137b3f4_nohash_0"), ("stop", "0132a06d_nohash_3")]


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(datasets.CACHE_DIR_ENV, str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def flac_corpus(shared_data):
    return find_corpus(shared_data)


@pytest.fixture(scope="module")
def splits(shared_data):
    return load_split_lists(shared_data / "ml4iot_kws_splits")


@pytest.fixture(scope="module")
def sample_items(flac_corpus):
    items = [i for i in SAMPLE_ITEMS if i in flac_corpus]
    assert len(items) >= 2
    return items


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, format="WAV", subtype=subtype)
    return path


def wav_tree(root: Path, corpus, items) -> Path:
    """<root>/mini_speech_commands/<label>/<stem>.wav decoded from the FLAC originals (no padding)."""
    for label, stem in items:
        samples, rate = sf.read(corpus.clip_path(label, stem), dtype="int16")
        write_wav(root / "mini_speech_commands" / label / f"{stem}.wav", samples, rate)
    (root / "mini_speech_commands" / "README.md").write_text("readme\n")
    return root / "mini_speech_commands"


# -- split lists and labels -------------------------------------------------------------------------


def test_course_split_lists(splits):
    assert {k: len(v) for k, v in splits.items()} == {"train": 6400, "val": 800, "test": 800}
    for name, counts in COURSE_COUNTS.items():
        assert dict(Counter(label for label, _ in splits[name])) == counts
    assert splits["train"][0] == ("down", "baeac2ba_nohash_0")
    assert splits["train"].lines[0] == 1


def test_pair_restriction_go_stop(splits):
    pair = select(splits, ["go", "stop"])
    assert {k: len(v) for k, v in pair.items()} == {"train": 1595, "val": 197, "test": 208}
    assert {label for items in pair.values() for label, _ in items} == {"go", "stop"}


def test_select_empty_class_names_keyword_and_split(splits):
    with pytest.raises(HarnessError, match=r"keyword 'marvin' has no clips in the train split"):
        select(splits, ["go", "marvin"])


def test_labels_order(shared_data):
    labels = load_labels(shared_data / "ml4iot_kws_splits" / "labels.txt")
    assert labels == ["stop", "up", "yes", "right", "left", "no", "down", "go"]


def test_bad_labels_file(tmp_path):
    (tmp_path / "labels.txt").write_text("stop, up")
    with pytest.raises(HarnessError, match="labels.txt"):
        load_labels(tmp_path / "labels.txt")


def test_split_line_forms(tmp_path):
    f = tmp_path / "kws_train_split.txt"
    f.write_bytes(b".\\data\\mini_speech_commands\\down\\aa_nohash_0.wav\r\n"
                  b"down/bb_nohash_1.wav\r\n/abs/path/go/cc_nohash_0.flac\r\n\r\n")
    items = parse_split_file(f)
    assert items == [("down", "aa_nohash_0"), ("down", "bb_nohash_1"), ("go", "cc_nohash_0")]
    assert items.lines == [1, 2, 3]


def test_malformed_split_line_names_file_and_line(tmp_path):
    f = tmp_path / "kws_val_split.txt"
    f.write_text("./data/mini_speech_commands/down/aa_nohash_0.wav\nnot-a-clip.txt\n")
    with pytest.raises(HarnessError, match=rf"{f}:2: malformed split line"):
        parse_split_file(f)


def test_split_line_naming_missing_clip(tmp_path, flac_corpus):
    f = tmp_path / "kws_test_split.txt"
    f.write_text("./data/mini_speech_commands/down/004ae714_nohash_0.wav\n"
                 "./data/mini_speech_commands/down/deadbeef_nohash_9.wav\n")
    items = parse_split_file(f)
    with pytest.raises(HarnessError, match=rf"{f}:2: clip down/deadbeef_nohash_9.wav is not in the corpus"):
        load_audio(flac_corpus, items, ["down"])


def test_split_line_naming_a_word_the_corpus_lacks_is_refused_not_dropped(tmp_path, shared_data, flac_corpus):
    """A pair version keeps only its two words; a line for a word the corpus lacks must not vanish with the rest."""
    folder = tmp_path / "ml4iot_kws_splits"
    shutil.copytree(shared_data / "ml4iot_kws_splits", folder)
    f = folder / "kws_test_split.txt"
    lines = f.read_text().splitlines()
    lines[4] = lines[4].replace(lines[4].split("/")[-2], "banana")
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(HarnessError, match=rf"{f}:5: clip banana/\S+\.wav names no word of the corpus"):
        split_lists.version_splits(flac_corpus, tmp_path, "course-pair", ["go", "stop"])


def test_split_folder_download_fallback(tmp_path, shared_data, monkeypatch):
    """Without <data>/ml4iot_kws_splits the pinned copies are fetched (here from a local server) and hash-checked."""
    served = tmp_path / "served"
    shutil.copytree(shared_data / "ml4iot_kws_splits", served)
    with _serve(served) as base:
        monkeypatch.setattr(split_lists, "SPLIT_FILES", {n: (f"{base}/{n}", h) for n, (_, h) in data.SPLIT_FILES.items()})
        folder = find_split_lists(tmp_path / "empty-data")
    assert folder == tmp_path / "cache" / "downloads" / "ml4iot_kws_splits"
    assert len(load_split_lists(folder)["test"]) == 800


def test_split_folder_offline_error(tmp_path, monkeypatch):
    url = _closed_port_url("kws_train_split.txt")
    monkeypatch.setattr(split_lists, "SPLIT_FILES", {n: (url, h) for n, (_, h) in data.SPLIT_FILES.items()})
    with pytest.raises(HarnessError, match=rf"cannot download .*; put ml4iot_kws_splits/ .* in {tmp_path / 'd'}"):
        find_split_lists(tmp_path / "d")


# -- corpus forms -----------------------------------------------------------------------------------


def test_flac_corpus_reading(flac_corpus, splits):
    assert flac_corpus.kind == "flac" and len(flac_corpus) == 8000
    assert flac_corpus.labels == sorted(COURSE_COUNTS["train"])
    flac_corpus.check(splits["train"])  # every .wav line resolves to a .flac with the same stem
    items = splits["test"][:5]
    audio, y, names = load_audio(flac_corpus, items, ["stop", "up", "yes", "right", "left", "no", "down", "go"])
    assert audio.shape == (5, CLIP_SAMPLES) and audio.dtype == np.int16
    assert y.dtype == np.int32 and names[0] == f"{items[0][0]}/{items[0][1]}"
    assert np.abs(audio).max(axis=1).min() > 0


def test_short_clip_is_zero_padded(flac_corpus):
    for label, stem in flac_corpus.items(["yes"])[:60]:
        info = sf.info(flac_corpus.clip_path(label, stem))
        if info.frames < CLIP_SAMPLES:
            clip = flac_corpus.read(label, stem)
            raw, _ = sf.read(flac_corpus.clip_path(label, stem), dtype="int16")
            assert np.array_equal(clip[:info.frames], raw) and not clip[info.frames:].any()
            return
    pytest.skip("no short clip among the first 60 'yes' clips")


def test_wav_tree_and_zip_match_flac(tmp_path, flac_corpus, sample_items):
    wav_root = wav_tree(tmp_path / "wavdata", flac_corpus, sample_items)
    wav_corpus = find_corpus(tmp_path / "wavdata")
    assert wav_corpus.kind == "wav" and wav_corpus.root == wav_root and len(wav_corpus) == len(sample_items)

    zdir = tmp_path / "zipdata"
    zdir.mkdir()
    with zipfile.ZipFile(zdir / "mini_speech_commands.zip", "w") as zf:
        for p in sorted(wav_root.rglob("*")):
            zf.write(p, f"mini_speech_commands/{p.relative_to(wav_root)}")
        zf.writestr("__MACOSX/mini_speech_commands/down/._004ae714_nohash_0.wav", b"junk")
    zip_corpus = find_corpus(zdir)
    assert zip_corpus.kind == "zip" and len(zip_corpus) == len(sample_items)

    for label, stem in sample_items:
        expected = flac_corpus.read(label, stem)
        assert np.array_equal(wav_corpus.read(label, stem), expected)
        assert np.array_equal(zip_corpus.read(label, stem), expected)
    # Same audio, different containers: different fingerprints; stable for one corpus.
    assert wav_corpus.fingerprint() == wav_corpus.fingerprint(sample_items[::-1])
    assert len({c.fingerprint(sample_items) for c in (flac_corpus, wav_corpus, zip_corpus)}) == 3
    zip_corpus.close()


def test_corpus_missing_and_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "CORPUS_URL", _closed_port_url("mini_speech_commands.zip"))
    with pytest.raises(HarnessError, match=rf"put mini_speech_commands.zip .* in {tmp_path / 'd'} or pass --data-dir"):
        find_corpus(tmp_path / "d")


def test_downloaded_corpus_with_wrong_clip_count_is_discarded(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    buf = io.BytesIO()
    sf.write(buf, np.zeros(100, np.int16), 16000, format="WAV", subtype="PCM_16")
    with zipfile.ZipFile(served / "mini_speech_commands.zip", "w") as zf:
        zf.writestr("mini_speech_commands/down/aa_nohash_0.wav", buf.getvalue())
    with _serve(served) as base:
        monkeypatch.setattr(corpus, "CORPUS_URL", f"{base}/mini_speech_commands.zip")
        with pytest.raises(HarnessError, match="holds 1 clips, expected 8000"):
            find_corpus(tmp_path / "d")
    assert not (tmp_path / "cache" / "downloads" / "mini_speech_commands.zip").exists()


def _flac(path: Path, samples: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, 16000, format="FLAC", subtype="PCM_16")
    return path


def test_a_folder_holding_both_forms_of_a_clip_reads_the_wav(tmp_path):
    root = tmp_path / "d" / "mini_speech_commands"
    wav, flac = np.full(800, 100, np.int16), np.full(800, -100, np.int16)
    for i in range(6):  # either form written first: the listing order must not decide
        first, second = (write_wav, _flac) if i % 2 else (_flac, write_wav)
        for put in (first, second):
            ext = ".wav" if put is write_wav else ".flac"
            put(root / "go" / f"c{i}_nohash_0{ext}", wav if put is write_wav else flac)
    c = find_corpus(tmp_path / "d")
    assert c.kind == "wav+flac" and len(c) == 6
    for label, stem in c.items():
        assert c.clip_path(label, stem).endswith(".wav") and c.read(label, stem)[0] == 100


def test_a_folder_skips_noise_folders_and_hidden_files(tmp_path):
    root = tmp_path / "d" / "mini_speech_commands"
    write_wav(root / "go" / "a_nohash_0.wav", np.zeros(800, np.int16))
    (root / "go" / "._a_nohash_0.wav").write_bytes(b"macOS metadata")
    write_wav(root / "_background_noise_" / "white_noise.wav", np.zeros(800, np.int16))
    c = find_corpus(tmp_path / "d")
    assert c.items() == [("go", "a_nohash_0")] and c.labels == ["go"]


def test_items_are_sorted_whatever_the_listing_order(flac_corpus):
    yes = flac_corpus.items(["yes"])
    assert len(yes) > 100 and yes == sorted(yes)


def test_the_plain_folder_is_preferred_to_the_flac_copy(tmp_path):
    write_wav(tmp_path / "mini_speech_commands" / "go" / "a_nohash_0.wav", np.zeros(800, np.int16))
    _flac(tmp_path / "mini_speech_commands_flac" / "mini_speech_commands" / "go" / "b_nohash_0.flac", np.zeros(800, np.int16))
    c = find_corpus(tmp_path)
    assert c.kind == "wav" and c.root == tmp_path / "mini_speech_commands"


def test_a_zip_with_clips_under_two_roots_is_refused(tmp_path):
    buf = io.BytesIO()
    sf.write(buf, np.zeros(100, np.int16), 16000, format="WAV", subtype="PCM_16")
    with zipfile.ZipFile(tmp_path / "mini_speech_commands.zip", "w") as zf:
        zf.writestr("mini_speech_commands/go/a_nohash_0.wav", buf.getvalue())
        zf.writestr("old/mini_speech_commands/go/b_nohash_0.wav", buf.getvalue())
    with pytest.raises(HarnessError, match="several roots"):
        find_corpus(tmp_path)


def test_a_download_that_is_not_a_zip_is_deleted(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    (served / "mini_speech_commands.zip").write_bytes(b"<html>captive portal</html>")
    with _serve(served) as base:
        monkeypatch.setattr(corpus, "CORPUS_URL", f"{base}/mini_speech_commands.zip")
        with pytest.raises(HarnessError, match="cannot open corpus archive"):
            find_corpus(tmp_path / "d")
    assert not (tmp_path / "cache" / "downloads" / "mini_speech_commands.zip").exists()


# -- bad clips --------------------------------------------------------------------------------------


def _bad_clips(tmp_path: Path, good: np.ndarray) -> dict[str, tuple[Path, str]]:
    root = tmp_path / "bad" / "mini_speech_commands" / "down"
    ok = write_wav(root / "ok_nohash_0.wav", good)
    truncated = root / "truncated_nohash_0.wav"
    truncated.write_bytes(ok.read_bytes()[:20000])
    flac_cut = root / "flaccut_nohash_0.flac"
    buf = io.BytesIO()
    sf.write(buf, good, 16000, format="FLAC", subtype="PCM_16")
    flac_cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "empty_nohash_0.wav").write_bytes(b"")
    return {
        "u8_nohash_0": (write_wav(root / "u8_nohash_0.wav", good, subtype="PCM_U8"), "PCM_U8"),
        "rate_nohash_0": (write_wav(root / "rate_nohash_0.wav", good, rate=44100), "44100 Hz"),
        "stereo_nohash_0": (write_wav(root / "stereo_nohash_0.wav", np.stack([good, good], 1)), "2 channels"),
        "truncated_nohash_0": (truncated, "truncated"),
        "flaccut_nohash_0": (flac_cut, "not readable|truncated"),
        "long_nohash_0": (write_wav(root / "long_nohash_0.wav", np.zeros(16001, np.int16)), "16001 samples"),
        "zero_nohash_0": (write_wav(root / "zero_nohash_0.wav", np.zeros(0, np.int16)), "no samples"),
        "empty_nohash_0": (root / "empty_nohash_0.wav", "empty"),
    }


def test_bad_clips_name_the_file(tmp_path):
    good = (np.sin(np.arange(16000) / 5) * 10000).astype(np.int16)
    cases = _bad_clips(tmp_path, good)
    corpus = find_corpus(tmp_path / "bad")
    assert np.array_equal(corpus.read("down", "ok_nohash_0"), good)
    for stem, (path, problem) in cases.items():
        with pytest.raises(HarnessError, match=problem) as err:
            corpus.read("down", stem)
        assert str(path) in str(err.value), (stem, str(err.value))


# -- hash split -------------------------------------------------------------------------------------


def test_hash_split_deterministic_and_speaker_disjoint(flac_corpus):
    first = hash_split(flac_corpus, ["go", "stop"])
    again = hash_split(flac_corpus, ["go", "stop"])
    assert first == again
    assert sum(len(v) for v in first.values()) == 2000
    speakers = {name: {stem.split("_nohash_")[0] for _, stem in items} for name, items in first.items()}
    assert not speakers["train"] & speakers["val"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["val"] & speakers["test"]
    assert 0.05 < len(first["val"]) / 2000 < 0.15 and 0.05 < len(first["test"]) / 2000 < 0.15
    assert isinstance(first["train"], SplitList)


# -- helpers ----------------------------------------------------------------------------------------


def test_a_clip_in_two_split_lists_is_refused_naming_file_and_line(tmp_path):
    lists = {"train": ["a/go/x_nohash_0.wav", "a/go/y_nohash_0.wav"], "val": ["a/stop/z_nohash_0.wav"],
             "test": ["a/stop/w_nohash_0.wav", "a/go/y_nohash_0.wav"]}
    for split, lines in lists.items():
        (tmp_path / f"kws_{split}_split.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(HarnessError, match=r"kws_test_split.txt:2: clip go/y_nohash_0 is also in the train split"):
        load_split_lists(tmp_path)


def test_a_wav_missing_only_its_last_sample_is_refused_as_truncated(tmp_path):
    from tasks.kws.decode import decode_clip

    good = (np.sin(np.arange(16000) / 5) * 10000).astype(np.int16)
    raw = write_wav(tmp_path / "ok.wav", good).read_bytes()
    assert np.array_equal(decode_clip(raw, "ok.wav"), good)
    with pytest.raises(HarnessError, match=r"cut\.wav is truncated: header announces 32000 data bytes, file holds 31998"):
        decode_clip(raw[:-2], "cut.wav")


def test_a_short_clip_keeps_its_own_length_unpadded_and_as_wav(tmp_path):
    from tasks.kws.decode import as_wav, decode_clip

    short = (np.sin(np.arange(12000) / 7) * 8000).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, short, 16000, format="FLAC", subtype="PCM_16")
    flac = buf.getvalue()
    assert np.array_equal(decode_clip(flac, "s.flac", pad=False), short)
    padded = decode_clip(flac, "s.flac")
    assert padded.shape == (CLIP_SAMPLES,) and np.array_equal(padded[:12000], short) and not padded[12000:].any()
    wav = as_wav(flac, "s.flac")
    assert sf.info(io.BytesIO(wav)).frames == 12000
    assert np.array_equal(decode_clip(wav, "s.wav", pad=False), short)
