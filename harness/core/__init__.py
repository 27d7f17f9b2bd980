"""The contract: tasks, constraint files, recipes, limits and the checks that turn figures into verdicts."""
