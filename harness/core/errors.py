"""One exception type for every user-facing failure: the CLI prints its message as one line."""


class HarnessError(Exception):
    """A problem with the user's input (file, key, clip, setting), explained in one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ModelError(HarnessError):
    """A problem with a model's content (does not load, wrong I/O). Raised where the bytes, not the file, are
    known; the caller that read the file adds its path."""
