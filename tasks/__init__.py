"""The project's tasks, found by the harness through this registry (name -> module holding TASK)."""
TASKS = {
    "forecast": "tasks.forecast.task",
    "kws": "tasks.kws.task",
}
