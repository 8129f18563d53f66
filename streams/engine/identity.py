"""Who this worker is: a lock on its data directory and a stable ``transactional.id``.

The transactional id is ``<app_id>-<instance id>``. The instance id is the setting
``LEADSCORE_INSTANCE_ID`` when given (a StatefulSet's pod name), else one generated on first start
and kept in the data directory, so a restarted worker fences its own previous incarnation and
completes or aborts its open transaction. The data directory is locked (``flock``) for the life
of the process: two live processes can never share one, nor the id kept in it.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from streams.errors import StartupError
from streams.settings import Settings


@dataclass
class Identity:
    instance_id: str
    transactional_id: str
    lock: IO[str]  # held open: the flock lasts as long as the process


def claim(settings: Settings) -> Identity:
    data_dir = Path(settings.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = (data_dir / "LOCK").open("a+")
    except OSError as exc:
        raise StartupError(
            f"cannot use the data directory {data_dir} ({exc.strerror}): fix LEADSCORE_DATA_DIR"
        ) from None
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise StartupError(
            f"the data directory {data_dir} is in use by another worker process: give each "
            "worker its own LEADSCORE_DATA_DIR"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    instance = settings.instance_id
    if instance is None:
        path = data_dir / "instance-id"
        if path.exists():
            instance = path.read_text().strip()
        else:
            instance = uuid.uuid4().hex[:16]
            path.write_text(instance + "\n")
    return Identity(instance, f"{settings.app_id}-{instance}", lock)
