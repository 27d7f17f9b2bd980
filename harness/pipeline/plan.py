"""What a run will build, checked before it builds anything.

A run over every suite trains for an hour; a missing dataset, a broken recipe file or a recipe key the data cannot
satisfy in its last version must stop it in seconds, with every problem named, not after the first versions' builds.
"""
from __future__ import annotations

from pathlib import Path

from harness.core import constraints, recipes
from harness.core.errors import HarnessError
from harness.core.task import Context, get as get_task


def load_recipe(cons, task_name: str, recipe_path: Path | None = None, overrides: list[str] | None = None):
    """(task, constraint section, recipe) for one task of one version: the recipe validated, its package format one
    the version accepts."""
    task = get_task(task_name)
    section = cons.task(task_name)
    path = Path(recipe_path) if recipe_path else recipes.default_path(task, cons.suite, cons.version)
    if not path.is_file():
        raise HarnessError(f"{path}: no recipe for {cons.suite} version {cons.version} ({task_name}); "
                           f"pass --recipe {task_name}=FILE")
    recipe = recipes.load(path, task, overrides)
    fmt = recipe["package"]["format"]
    if fmt not in section["size_formats"]:
        raise HarnessError(f"{path}: package.format {fmt!r} is not accepted by {cons.rel_path} "
                           f"(size_formats = {section['size_formats']})")
    return task, section, recipe


def check(ctx: Context, plan: list[tuple[str, str]], only_tasks: list[str] | None = None,
          recipe_paths: dict[str, Path] | None = None, overrides: list[str] | None = None,
          constraints_dir: Path | None = None) -> None:
    """Every dataset and every recipe the planned versions need; raise one HarnessError naming all problems.

    Data are checked first: a recipe's data checks (e.g. keyword names the corpus must have) need the data."""
    root = constraints_dir or constraints.CONSTRAINTS_DIR
    versions = [constraints.load(s, v, root=root) for s, v in plan]
    wanted = [(cons, name) for cons in versions for name in cons.tasks if not only_tasks or name in only_tasks]
    problems: list[str] = []

    def attempt(fn, *args):
        try:
            fn(*args)
        except HarnessError as e:
            if str(e) not in problems:
                problems.append(str(e))

    for cons, name in wanted:
        attempt(get_task(name).ensure_data, ctx, cons.task(name))
    if problems:
        raise HarnessError(" | ".join(problems))

    def recipe_and_data(cons, name):
        task, section, recipe = load_recipe(cons, name, (recipe_paths or {}).get(name), overrides)
        try:
            task.check_recipe_data(ctx, section, recipe)
        except HarnessError as e:
            raise HarnessError(f"{recipe.path}: {e}") from None

    for cons, name in wanted:
        attempt(recipe_and_data, cons, name)
    if problems:
        raise HarnessError(" | ".join(problems))
