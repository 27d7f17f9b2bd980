"""K-fold cross-validation over the training and validation data: which items each fold holds out.

Small validation splits (about 200 clips for a keyword pair) cannot tell recipes apart: one clip is half a point.
Folds re-partition train + val so every item is held out once; the test split is never part of the pool.
Items are grouped (e.g. by speaker) so a group is never on both sides. Groups are ordered by a hash of their
name and dealt to the folds in turn: the same pool gives the same folds on every machine and in every process,
and every fold holds out a near-equal number of groups.

The held-out part is only measured. Whatever training chooses with validation data (the best epoch, early
stopping) it chooses on a validation part carved from the kept groups, so the figure of a fold is not the best of
several looks at the part it is measured on.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Sequence, TypeVar

from harness.core.errors import HarnessError

T = TypeVar("T")


def _rank(group: str) -> bytes:
    return hashlib.sha256(group.encode("utf-8")).digest()


def fold_of_groups(groups: Iterable[str], folds: int) -> dict[str, int]:
    """group -> the fold (0..folds-1) that holds it out."""
    ordered = sorted(set(groups), key=lambda g: (_rank(g), g))
    return {g: i % folds for i, g in enumerate(ordered)}


def split_pool(pool: Sequence[T], group_of: Callable[[T], str], fold: int, folds: int) -> tuple[list[T], list[T]]:
    """(kept for training, held out) for fold `fold` of `folds`; both keep the pool's order."""
    if folds < 2:
        raise HarnessError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if not 0 <= fold < folds:
        raise HarnessError(f"fold {fold} is not one of 0..{folds - 1}")
    owner = fold_of_groups((group_of(item) for item in pool), folds)
    if len(owner) < folds:
        raise HarnessError(f"{folds} folds need at least {folds} groups; the pool has {len(owner)} "
                           f"({len(pool)} items): use fewer folds")
    kept, held = [], []
    for item in pool:
        (held if owner[group_of(item)] == fold else kept).append(item)
    return kept, held


# A fold validates on 1 in 9 of its kept groups: about the course's 800 validation to 6,400 training clips.
VALIDATION_PARTS = 9


def fold_parts(pool: Sequence[T], group_of: Callable[[T], str], fold: int,
               folds: int) -> tuple[list[T], list[T], list[T]]:
    """(train, validation, held out) for fold `fold` of `folds`, three group-disjoint parts in the pool's order."""
    kept, held = split_pool(pool, group_of, fold, folds)
    groups = len({group_of(item) for item in kept})
    if groups < 2:
        raise HarnessError(f"fold {fold + 1} of {folds} keeps {groups} group(s): training needs one more for "
                           "validation; use fewer folds")
    train, val = split_pool(kept, group_of, 0, min(VALIDATION_PARTS, groups))
    return train, val, held
