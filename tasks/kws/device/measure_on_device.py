"""Measure this bundle's keyword-spotting model on the device, under the edition's latency protocol.

Needs only numpy and a TFLite interpreter (ai-edge-litert or tflite-runtime); see requirements.txt.

    python measure_on_device.py                       # latency under the protocol in bundle.json
    python measure_on_device.py --clips DIR           # + accuracy on DIR/<label>/*.wav (16 kHz mono int16)
    python measure_on_device.py --device "RPi 4 B"    # name the device in the output JSON

Writes device-latency-<device>.json; bring it back with `python -m harness import-latency FILE`.
"""
import argparse
import contextlib
import datetime
import hashlib
import io
import json
import os
import platform
import sys
import time
import wave
import zipfile
import zlib
from pathlib import Path

# One thread everywhere, as the harness measures: a multi-threaded BLAS on a tiny product is slower, not faster.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import kernels  # noqa: E402  (shipped beside this script: the harness's own feature code)
import latency  # noqa: E402  (shipped beside this script: the harness's own timing code)

SOURCE_RATE_HZ = 16000


class Refused(Exception):
    """A fault of the bundle or the input: one line on stderr and exit 2, nothing written."""


@contextlib.contextmanager
def native_stderr_silenced():
    """The interpreter's C++ INFO lines ("Created TensorFlow Lite XNNPACK delegate") go to fd 2, not to the user.
    (The harness's own silencer lives beside TensorFlow's setup, which this script cannot ship.)"""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def interpreter(model: bytes):
    try:
        from ai_edge_litert.interpreter import Interpreter
        name, dist = "ai_edge_litert", "ai-edge-litert"
    except ImportError:
        from tflite_runtime.interpreter import Interpreter
        name, dist = "tflite_runtime", "tflite-runtime"
    try:
        from importlib.metadata import version
        name += " " + version(dist)
    except Exception:  # the version is a label only
        pass
    with native_stderr_silenced():  # a failure still raises in Python, with its message
        it = Interpreter(model_content=model, num_threads=1)
        it.allocate_tensors()
    return it, name


def unpack(blob: bytes, name: str) -> bytes:
    if name.endswith(".zlib"):
        return zlib.decompress(blob)
    if name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:  # the bundle's own zip: one member, written by the harness
            return zf.read(zf.namelist()[0])
    return blob


def device_info(name):
    info = {"name": name or platform.node(), "machine": platform.machine(), "platform": platform.platform(),
            "python": platform.python_version()}
    for path, key in (("/proc/device-tree/model", "model"), ("/sys/firmware/devicetree/base/model", "model")):
        try:
            info[key] = Path(path).read_text().strip("\x00\n ")
            break
        except OSError:
            pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def read_wav(path) -> np.ndarray:
    """16 kHz mono int16 WAV (a path or a file object) -> float32 [16000] in [-1, 1), zero-padded at the end."""
    try:
        with wave.open(path if hasattr(path, "read") else str(path), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() != SOURCE_RATE_HZ:
                raise Refused(f"{path}: expected 16 kHz mono 16-bit PCM")
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")[:SOURCE_RATE_HZ]
    except (wave.Error, EOFError) as e:
        raise Refused(f"{path}: not a readable WAV file ({e or type(e).__name__})") from None
    out = np.zeros(SOURCE_RATE_HZ, np.float32)
    out[:len(x)] = x.astype(np.float32) * np.float32(1.0 / 32768.0)
    return out


class Model:
    def __init__(self, model: bytes, consts, args):
        self.it, self.runtime = interpreter(model)
        self.inp, self.out = self.it.get_input_details()[0], self.it.get_output_details()[0]
        self.shape = tuple(int(d) for d in self.inp["shape"])
        self.c, self.args = consts, args
        self.dct = consts["dct"] if args["num_coefficients"] else None

    def features(self, audio: np.ndarray, source_rate: int) -> np.ndarray:
        down = source_rate // self.args["sampling_rate"]
        if down > 1:
            audio = kernels.polyphase_downsample(audio, self.c[f"reversed_taps_{down}"], down)
        if self.shape == (self.args["sampling_rate"], 1):  # the front end is inside the file: it takes the audio
            if self.inp["dtype"] == np.int16 and not self.inp["quantization"][0]:
                return np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16).reshape(self.shape)
            return audio.astype(np.float32).reshape(self.shape)
        fl, fs = self.c["frame"]
        f = kernels.features(kernels.frames(audio, int(fl), int(fs)), self.c["window"], self.c["mel"], self.dct,
                             float(self.c["log_offset"]))
        return f.reshape(self.shape)

    def set(self, x: np.ndarray) -> None:
        if self.inp["dtype"] != np.float32 and self.inp["quantization"][0]:  # int8/uint8: quantize with the file's scale
            scale, zero = self.inp["quantization"]
            info = np.iinfo(self.inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        self.it.set_tensor(self.inp["index"], x.astype(self.inp["dtype"]))

    def get(self) -> np.ndarray:
        y = self.it.get_tensor(self.out["index"])
        if self.out["dtype"] != np.float32:
            scale, zero = self.out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y


def clip_list(folder: Path, labels):
    items = [(p, labels.index(p.parent.name)) for p in sorted(folder.glob("*/*.wav")) if p.parent.name in labels]
    if not items:
        raise Refused(f"{folder}: no <label>/*.wav clips for the labels {labels}")
    return items


def measure_latency(m: Model, proto: dict, clips) -> dict:
    rng = np.random.default_rng(0)
    fixed_normal = rng.standard_normal(SOURCE_RATE_HZ).astype(np.float32)
    if proto["input"] == "test-clips" and not clips:
        raise Refused("this edition times the test clips: pass --clips DIR")
    raw = [p.read_bytes() for p, _ in clips] if proto["input"] == "test-clips" else []
    decoded = [read_wav(p) for p, _ in clips] if raw else []  # every clip read once: a bad one is named here

    def step(i):
        if proto["input"] == "uniform-48k":
            x = rng.uniform(0.0, 1.0, 48000).astype(np.float32)
            t0 = time.perf_counter()
            f = m.features(x, 48000)
        elif proto["input"] == "normal-16k":
            t0 = time.perf_counter()
            f = m.features(fixed_normal / np.float32(32767.0), SOURCE_RATE_HZ)
        elif proto["decode_in_timer"]:
            data = raw[i % len(raw)]
            t0 = time.perf_counter()
            f = m.features(read_wav(io.BytesIO(data)), SOURCE_RATE_HZ)
        else:
            audio = decoded[i % len(decoded)]
            t0 = time.perf_counter()
            f = m.features(audio, SOURCE_RATE_HZ)
        t1 = time.perf_counter()
        m.set(f)
        m.it.invoke()
        if proto["read_output"]:
            m.get()
        return t1 - t0, time.perf_counter() - t1

    runs = proto["runs"] * (len(raw) if raw else 1)
    res = latency.summarize(latency.time_runs(step, runs, proto["discard"], sleep_s=proto["sleep_s"]), proto["statistic"])
    res["metric_ms"] = res["model_ms"] if proto["scope"] == "inference" else res["total_ms"]
    res["warmup_runs"] = latency.HARNESS_WARMUP
    return res


def measure_accuracy(m: Model, clips) -> dict:
    correct = 0
    for path, y in clips:
        m.set(m.features(read_wav(path), SOURCE_RATE_HZ))
        m.it.invoke()
        correct += int(np.argmax(m.get()) == y)
    return {"correct": correct, "clips": len(clips), "accuracy_pct": 100.0 * correct / len(clips)}


def main(argv=None) -> int:
    try:
        return measure(argv)
    except Refused as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
    except (OSError, EOFError, ValueError, KeyError) as e:  # a missing, cut or damaged file of the bundle (clips: Refused)
        print(f"error: {getattr(e, 'filename', None) or type(e).__name__}: {getattr(e, 'strerror', None) or e}",
              file=sys.stderr, flush=True)
    return 2


def measure(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", help="folder of <label>/*.wav test clips (accuracy; needed by protocols that time clips)")
    p.add_argument("--device", help="device name for the JSON (default: the host name)")
    p.add_argument("--out", help="output JSON (default: device-latency-<device>.json beside this script)")
    a = p.parse_args(argv)
    bundle = json.loads((HERE / "bundle.json").read_text())
    blob = (HERE / bundle["artifact"]).read_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    if sha != bundle["artifact_sha256"]:
        raise Refused(f"{bundle['artifact']}: sha256 {sha} is not the bundle's {bundle['artifact_sha256']}")
    side = json.loads((HERE / "sidecar.json").read_text())
    consts = dict(np.load(HERE / "frontend.npz"))
    m = Model(unpack(blob, bundle["artifact"]), consts, side["PREPROCESSING_ARGS"])
    clips = clip_list(Path(a.clips), side["LABELS"]) if a.clips else []
    dev = device_info(a.device)
    print(f"{bundle['suite']} version {bundle['version']}: {bundle['artifact']} on {dev['name']} ({m.runtime})", flush=True)
    lat = measure_latency(m, bundle["protocol"], clips)
    print(f"latency ({bundle['protocol']['scope']}, {bundle['protocol']['statistic']} of {lat['n']} runs): "
          f"{lat['metric_ms']:.3f} ms", flush=True)
    acc = measure_accuracy(m, clips) if clips else None
    if acc:
        print(f"accuracy: {acc['accuracy_pct']:.2f} % ({acc['correct']} / {acc['clips']})", flush=True)
    out = {"schema": "ml4iot-device-measurement/1", "suite": bundle["suite"], "version": bundle["version"],
           "task": bundle["task"], "artifact": bundle["artifact"], "artifact_sha256": sha, "metric": bundle["metric"],
           "device": dev, "runtime": m.runtime, "protocol": bundle["protocol"], "latency": lat, "accuracy": acc,
           "finished_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in dev["name"])
    path = Path(a.out) if a.out else HERE / f"device-latency-{safe}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(path)  # never a half-written file
    print(f"-> {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
