"""Decoding one clip file (WAV or FLAC) to the course's int16 [16000] samples, with one-line errors naming the clip."""
from __future__ import annotations

import io
import re
import struct

import numpy as np

from harness.core.errors import HarnessError

SAMPLE_RATE_HZ = 16000
CLIP_SAMPLES = 16000  # 1 s at 16 kHz: every clip is zero-padded at the end to this length
AUDIO_SUFFIXES = (".wav", ".flac")

# --------------------------------------------------------------------------------------------
# Decoding


def decode_clip(data: bytes, where: str, pad: bool = True) -> np.ndarray:
    """Decode WAV/FLAC bytes into int16 [16000] (pad=False: the clip's own samples); problems name `where`."""
    import soundfile as sf

    if not data:
        raise HarnessError(f"clip {where} is empty (0 bytes)")
    if is_wav(data):
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
    if not pad:
        return samples
    clip = np.zeros(CLIP_SAMPLES, dtype=np.int16)
    clip[: len(samples)] = samples
    return clip


def is_wav(data: bytes) -> bool:
    return data[:4] in (b"RIFF", b"RIFX")


def as_wav(data: bytes, where: str) -> bytes:
    """The clip as 16-bit PCM WAV bytes, the format of the course's own clip files: WAV is returned as it is,
    another container (the FLAC copies) is decoded and written as WAV with the same samples."""
    import soundfile as sf

    if is_wav(data):
        return data
    out = io.BytesIO()
    sf.write(out, decode_clip(data, where, pad=False), SAMPLE_RATE_HZ, format="WAV", subtype="PCM_16")
    return out.getvalue()


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
