"""Where a study lives: a journal file (resumable, torn records set aside) or a database URL shared by workers."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from harness.core.errors import HarnessError
from harness.toolkit import atomic
from harness.toolkit.hostinfo import pid_alive


def default_storage(suite: str, version: str, task: str, out_dir: Path) -> str:
    return str(out_dir / suite / f"search-{version}-{task}.journal")


def open_storage(spec: str):
    import optuna

    if "://" in spec:
        if spec.startswith(("postgresql://", "postgres://")):
            spec = "postgresql+psycopg2://" + spec.split("://", 1)[1]  # the pinned driver (SQLAlchemy may default to psycopg 3)
        # Heartbeats let other workers see a dead worker's trial as failed and retry it.
        try:
            return _retry(lambda: optuna.storages.RDBStorage(
                spec, heartbeat_interval=30, grace_period=120,
                failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=1),
            ))
        except Exception as e:
            if type(e).__module__.split(".")[0] not in ("sqlalchemy", "psycopg2", "optuna"):
                raise
            first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise HarnessError(f"{mask_url(spec)}: cannot open the study database ({first.strip()[:200]})") from None
    from optuna.storages.journal import JournalFileBackend

    try:
        Path(spec).parent.mkdir(parents=True, exist_ok=True)
        repair_journal(Path(spec))
        return optuna.storages.JournalStorage(JournalFileBackend(spec))
    except OSError as e:
        raise HarnessError(f"{spec}: cannot open the search journal ({e.strerror or e})") from None


def repair_journal(path: Path, log=print) -> int:
    """Cut a torn last record (a write killed half way) off the journal, keeping it aside; returns bytes set aside.

    Optuna appends records one JSON line at a time: a torn line would be glued to the next record and
    make every later resume fail, so it is moved to `<journal>.torn` before the study is opened."""
    import json

    def not_a_journal(which: str):  # a file that is no journal is refused and left untouched
        return HarnessError(f"{path}: not an Optuna search journal ({which} is no journal record); "
                            "left as it is: pass another --storage")

    if not path.is_file():
        return 0
    data = path.read_bytes()
    keep = len(data)
    if not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
    else:
        last = data[data.rfind(b"\n", 0, len(data) - 1) + 1:]
        try:
            json.loads(last)
        except ValueError:
            keep = data.rfind(b"\n", 0, len(data) - 1) + 1
    for i, line in enumerate(data[:keep].splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or "op_code" not in record:
            raise not_a_journal(f"line {i}")
    if keep == len(data):
        return 0
    if not data[keep:].startswith(b"{"):  # a torn record is the start of one
        raise not_a_journal("its last line")
    torn = path.with_name(path.name + ".torn")  # an earlier torn record is kept too
    before = torn.read_bytes() if torn.is_file() else b""
    atomic.write_bytes(torn, before + (b"\n" if before and not before.endswith(b"\n") else b"") + data[keep:])
    with open(path, "r+b") as f:
        f.truncate(keep)
    log(f"  {path}: the last record was cut off (a killed write); set aside in {path.name}.torn, resuming without it")
    return len(data) - keep


def mask_url(url: str) -> str:
    """A database URL fit for a message: the password replaced by ***."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _retry(make, attempts: int = 6):
    """Workers starting together on a fresh database race to create Optuna's tables and the study;
    the loser sees a duplicate-object error and succeeds on a second try."""
    for i in range(attempts):
        try:
            return make()
        except Exception as e:  # sqlalchemy's IntegrityError / ProgrammingError, optuna's DuplicatedStudyError
            if i == attempts - 1 or type(e).__module__.split(".")[0] not in ("sqlalchemy", "optuna", "psycopg2"):
                raise
            time.sleep(0.3 * (i + 1))


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def recover_interrupted(study, log) -> int:
    """Trials left RUNNING by a dead worker on this host: mark them failed and queue their parameters again."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get("worker", "")
        if not owner.startswith(host + ":"):
            continue  # another machine's trial: the database heartbeat handles it
        pid = int(owner.rsplit(":", 1)[1])
        if pid_alive(pid):
            continue
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # noqa: SLF001 - no public API for this
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
        n += 1
    if n:
        log(f"  resumed: {n} interrupted trial(s) queued again")
    return n

