"""How the keyword task reads files it did not build: `check` options (where the preprocessing, label order and
resampling order come from), `grade`'s args files beside a submission, and the device bundle's files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.core.errors import HarnessError
from tasks.kws import data as msc
from tasks.kws import features as feat


class UserFiles:
    """Mixed into the keyword task (it provides corpus(), splits() and the constraint labels)."""

    check_options = (
        ("--sidecar", {"help": "kws: the model's sidecar JSON (PREPROCESSING_ARGS and LABELS)"}),
        ("--preprocessing", {"help": "kws: the course's PREPROCESSING_ARGS as a JSON file"}),
        ("--kws-flags", {"help": "kws: the flags of the course's kws_latency.py command, e.g. "
                                 "'--rate 8000 --bins 16 --length 320 --stride 160 --mfcc'"}),
        ("--labels", {"help": "kws: labels file (a Python list, as the course's labels.txt) giving the output order"}),
        ("--resample-order", {"dest": "resample_order", "choices": ("pad-first", "resample-first"),
                              "help": "kws, rates below 16 kHz: zero-pad the clip to 1 s and then resample (pad-first, "
                                      "the harness's own pipeline; default) or resample the clip and then pad"}),
    )

    # `grade`: args files looked for beside a submission, most specific first ({stem}: the file name without suffix).
    ARGS_FILES = ("{stem}.json", "{stem}_args.json", "{stem}.args.json", "{stem}_sidecar.json", "sidecar.json",
                  "args.json", "preprocessing_args.json", "PREPROCESSING_ARGS.json")
    FLAGS_FILES = ("{stem}.flags", "{stem}_flags.txt", "kws_flags.txt")

    def submission_options(self, folder, model):
        import json

        from harness.toolkit.package import stem_of

        stem, folder = stem_of(model.name), Path(folder)
        opts = {}
        for pattern in self.ARGS_FILES:
            path = folder / pattern.format(stem=stem)
            if path.is_file():
                try:
                    data = json.loads(path.read_text())
                except (OSError, ValueError) as e:
                    raise HarnessError(f"{path}: not a JSON args file ({e})") from None
                opts["sidecar" if isinstance(data, dict) and "PREPROCESSING_ARGS" in data else "preprocessing"] = str(path)
                break
        else:
            for pattern in self.FLAGS_FILES:
                path = folder / pattern.format(stem=stem)
                if path.is_file():
                    opts["kws_flags"] = path.read_text().strip()
                    try:  # a bad flags file is named here: the check itself only knows the flags, not their file
                        feat.PreprocessingArgs.from_dict(feat.args_from_course_flags(opts["kws_flags"]), where="flags")
                    except HarnessError as e:
                        raise HarnessError(f"{path}: not the flags of kws_latency.py ({e})") from None
                    break
        if not opts:
            raise HarnessError(f"{folder}: no preprocessing arguments for {model.name} (expected {stem}.json with "
                               "PREPROCESSING_ARGS, args.json, or kws_flags.txt with the kws_latency.py flags)")
        if (folder / "labels.txt").is_file():
            opts["labels"] = str(folder / "labels.txt")
        return opts

    def setup_for_artifact(self, ctx, section, recipe):
        import json

        from harness.core.recipes import Recipe

        o, notes, args, labels = ctx.options, [], None, None
        args_from = labels_from = None  # the file each came from, named when it is wrong
        said = []  # each source given, in order; the last one's arguments are used
        if o.get("sidecar"):
            try:
                side = json.loads(Path(o["sidecar"]).read_text())
                args, labels = side["PREPROCESSING_ARGS"], side.get("LABELS")
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise HarnessError(f"{o['sidecar']}: not a sidecar with PREPROCESSING_ARGS ({type(e).__name__}: {e})") from None
            said.append(f"preprocessing from the sidecar {o['sidecar']}")
            args_from = labels_from = o["sidecar"]
        if o.get("preprocessing"):
            try:
                args = json.loads(Path(o["preprocessing"]).read_text())
            except (OSError, ValueError) as e:
                raise HarnessError(f"{o['preprocessing']}: not a JSON file of PREPROCESSING_ARGS ({e})") from None
            said.append(f"preprocessing from {o['preprocessing']}")
            args_from = o["preprocessing"]
        if o.get("kws_flags"):
            args = feat.args_from_course_flags(o["kws_flags"])
            said.append(f"preprocessing from the course command line `python kws_latency.py {o['kws_flags']}`")
            args_from = "--kws-flags"
        if args is None:
            raise HarnessError("checking a keyword-spotting file needs its preprocessing: --sidecar FILE, "
                               "--preprocessing FILE (PREPROCESSING_ARGS as JSON) or --kws-flags '...'")
        args = feat.PreprocessingArgs.from_dict(args, where=f"{args_from}: preprocessing arguments").to_dict()
        notes.append(said[-1] + (f" (not {'; not '.join(x.removeprefix('preprocessing ') for x in said[:-1])})"
                                 if len(said) > 1 else ""))
        if o.get("labels"):
            labels = msc.load_labels(o["labels"])
            notes.append(f"output order from {o['labels']}")
            labels_from = o["labels"]
        elif labels:
            notes.append("output order from the sidecar's LABELS")
        else:
            labels = section["labels"]
            notes.append(f"output order: the edition's labels {labels}")
        if sorted(labels) != sorted(section["labels"]):
            raise HarnessError(f"{labels_from + ': ' if labels_from else ''}labels {labels} are not the keywords of "
                               f"this version ({section['labels']})")
        notes.append(f"interpreter kernels: {ctx.options.get('kernels') or 'default'}")
        if feat.PreprocessingArgs.from_dict(args).downsample_factor > 1:
            notes.append("audio zero-padded to 1 s, then resampled" if (o.get("resample_order") or "pad-first") == "pad-first"
                         else "audio resampled, then zero-padded to 1 s (--resample-order resample-first)")
        return dict(section, labels=list(labels)), Recipe(recipe.path, dict(recipe.data, features=args)), notes
    def resample_first_features(self, ctx, section, args, split) -> np.ndarray:
        """Features when each clip is resampled at its own length and then zero-padded to 1 s at the lower rate
        (some groups' order; the filter's tail at the clip's end differs from padding first)."""
        corpus, (s, _) = self.corpus(ctx), self.splits(ctx, section)
        ex = feat.NumpyFeatures(args)
        out = np.empty((len(s[split]), *args.feature_shape, 1), np.float32)
        for i, (label, stem) in enumerate(s[split]):
            clip = msc.decode_clip(corpus.raw(label, stem), corpus.clip_path(label, stem), pad=False)
            low = feat.resample(clip.astype(np.float32) * np.float32(1.0 / 32768.0), args.downsample_factor)
            padded = np.zeros(args.sampling_rate, np.float32)
            padded[:min(len(low), args.sampling_rate)] = low[:args.sampling_rate]
            out[i, ..., 0] = ex.at_rate(padded)
        return out
    def device_protocol(self, section) -> dict:
        """What the device script times under (the constraint file's [kws.latency]); `import-latency` holds a device
        figure against it."""
        if not section.get("latency"):
            raise HarnessError("this version has no latency protocol to run on a device")
        return section["latency"]

    def device_files(self, section, sidecar) -> dict:
        """`bundle`: the device script, the feature and timing code it imports (this project's own files, copied
        verbatim) and the feature constants, so the device needs numpy and an interpreter only."""
        import io

        from harness.toolkit.measure import latency as timing
        from tasks.kws.features import kernels

        protocol = self.device_protocol(section)
        args = feat.PreprocessingArgs.from_dict(sidecar["PREPROCESSING_ARGS"])
        ex = feat.NumpyFeatures(args)
        consts = {"window": ex.window, "mel": ex.mel, "dct": ex.dct if ex.dct is not None else np.zeros((0, 0), np.float32),
                  "frame": np.array([args.frame_length, args.frame_step]), "log_offset": np.float32(feat.LOG_OFFSET)}
        for source in (feat.SOURCE_RATE_HZ, feat.LATENCY_SOURCE_RATE_HZ):
            down = source // args.sampling_rate
            if down > 1:
                consts[f"reversed_taps_{down}"] = np.asarray(feat._reversed_filter(down))
        buf = io.BytesIO()
        np.savez(buf, **consts)
        here = Path(__file__).parent
        return {"measure_on_device.py": (here / "device" / "measure_on_device.py").read_bytes(),
                "kernels.py": Path(kernels.__file__).read_bytes(), "latency.py": Path(timing.__file__).read_bytes(),
                "frontend.npz": buf.getvalue()}, {"protocol": protocol, "metric": "latency_ms",
                                                   "command": "python measure_on_device.py [--clips DIR] [--device NAME]"}
