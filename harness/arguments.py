"""argparse's side of the command line: value types checked before any data is read, and errors in one line."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """An argparse parser whose mistakes read like every other refusal: one `error:` line, exit 2, usage on --help."""

    def parse_known_args(self, args=None, namespace=None):
        self._given = list(sys.argv[1:] if args is None else args)  # what error() may point at
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        greedy = [o for a in self._actions if a.nargs in ("+", "*") for o in a.option_strings
                  if o in getattr(self, "_given", ())]
        if "arguments are required" in message and greedy:  # `grade --jena f.zip subs/`: the folder went to --jena
            message += f"; {greedy[0]} takes every value up to the next option, so give the positional argument first"
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def count(text: str) -> int:
    """argparse type of the counts (--seeds, --jobs, --trials, --folds): a bad count fails before any data is read."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def out_dir(text: str) -> str:
    """argparse type of --out: a folder we can create or write, checked before any data is read or model trained
    (a run writes its results last)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (it would write into the current folder)")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: exists and is not a folder")
    ancestor = next(p for p in [path, *path.absolute().parents] if p.exists())
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: cannot create or write it ({ancestor} is not a writable folder)")
    return text


class AppendOnce(argparse.Action):
    """A repeatable option whose values are kept once each, in the order given (`--version a --version a` is one
    version, measured once)."""

    def __call__(self, parser, namespace, values, option_string=None):
        kept = list(getattr(namespace, self.dest) or [])
        setattr(namespace, self.dest, kept if values in kept else kept + [values])
