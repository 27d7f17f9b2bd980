"""A build whose file takes raw audio: the front end goes inside the .tflite (see `frontend`), and the sizes of the
same model without it are kept, for editions whose size limit does not count the front end."""
from __future__ import annotations

import numpy as np

from harness.core.task import Trained
from tasks.kws import features as feat


def trained(task, ctx, section, recipe, deployed, info) -> Trained:
    """The trained feature model, converted with its front end; calibrated on raw clips of the training list."""
    from harness.toolkit import convert as converter
    from harness.toolkit import package
    from tasks.kws import frontend

    args = feat.PreprocessingArgs.from_dict(recipe["features"])
    dtype = recipe["export"]["audio_dtype"]
    s, _ = task.splits(ctx, section)
    calib = task.clips(ctx, s["train"][:recipe["quantize"]["calibration_samples"]])
    calib = calib if dtype == "int16" else calib.astype(np.float32) / np.float32(32768.0)

    def convert(mode, audio):
        feats = frontend.features(audio, args)
        alone = converter.to_tflite(deployed, mode, lambda: ([feats[i:i + 1]] for i in range(len(feats))))
        info["sizes_without_front_end"] = package.sizes(alone)
        return frontend.to_tflite(deployed, args, mode, audio, input_dtype=dtype)

    return Trained(model=deployed, calibration=calib, info=info, convert=convert)


def counted_size(section, build_info, fmt) -> int | None:
    """The size without the front end when the edition does not count it; None: the whole submitted file."""
    sizes = build_info.get("sizes_without_front_end")
    return sizes[fmt] if sizes and not section["front_end_in_size"] else None


def size_rows(section, build_info) -> list[tuple[str, str]]:
    sizes = build_info.get("sizes_without_front_end")
    if not sizes:
        return []
    # front_end_in_size is no build key (the file is the same): the clause follows the version being reported
    return [("Sizes of the same model without its front end", ", ".join(f"{k} {v:,} B" for k, v in sizes.items())
             + ("; the size limit counts these ([kws] front_end_in_size = false)" if not section["front_end_in_size"]
                else "; the size limit counts the submitted file, front end included"))]
