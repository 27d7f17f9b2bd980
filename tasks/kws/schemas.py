"""The keyword task's configuration schemas: its constraint section and its recipe's [export] section."""
from harness.core.config import Field, one_of
from harness.core.constraints import SECTION_SCHEMA
from tasks.kws import latency as latency_protocol

EXPORT_SCHEMA = {
    "front_end": Field(str, default="external", check=one_of("external", "in-graph"),
                       doc="external: the file takes features (the course's way); in-graph: raw audio in, the MFCC "
                           "front end inside the file (AudioSpectrogram + Mfcc ops), trained on those features"),
    "audio_dtype": Field(str, default="float32", check=one_of("float32", "int16"), doc="in-graph: the file's audio input"),
}

CONSTRAINT_SCHEMA = {
    **SECTION_SCHEMA,
    "labels": Field(list, item=str, check=lambda v: None if len(v) >= 2 and len(set(v)) == len(v) else "must list >= 2 distinct keywords"),
    "split": Field(str, check=one_of("course", "course-pair", "hash")),
    "min_accuracy_pct": Field(float, default=None, check=lambda v: None if v is None or 0 < v < 100 else "must be in (0, 100)"),
    "max_size_bytes": Field(int, default=None, check=lambda v: None if v is None or v >= 1 else "must be >= 1"),
    "latency": Field(dict, default=None, schema=latency_protocol.SCHEMA),
    "front_end_in_size": Field(bool, default=True, doc="the size limit counts a front end inside the file (every "
                                                         "edition here: the submitted file as it is)"),
}
