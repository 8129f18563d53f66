"""Where the broker's CPU goes during a benchmark window: per thread group and, with a Java
Flight Recorder recording, per request type.

The broker is found by the port of ``--bootstrap`` (the process listening on it). Its threads'
CPU comes from ``/proc/<pid>/task/*/stat`` (user and system time, so the time in system calls
counts too), grouped by the thread's name without its number (``data-plane-kafka-request-
handler-3`` -> ``data-plane-kafka-request-handler``; Linux keeps the first 15 bytes of a name).
The recording (``jcmd <pid> JFR.start``, JDK 17+) samples the broker's Java stacks every 10 ms;
each sample is counted under the first ``KafkaApis.handle*`` method on its stack (the request
type a request handler was serving), or its thread group when there is none. A sample is taken
of a thread running Java code only, so the recording sees less than ``/proc`` does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

_TCP = ("/proc/net/tcp", "/proc/net/tcp6")
_LISTEN = "0A"


def broker_pid(bootstrap: str) -> int | None:
    """The pid of the process listening on the first bootstrap address's port, if visible."""
    port = int(bootstrap.split(",")[0].rsplit(":", 1)[1])
    inodes = set()
    for table in _TCP:
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                return int(entry.name)
        except OSError:
            continue
    return None


def cpu_s(pid: int, task: str | None = None) -> float:
    """User plus system CPU seconds of a process (or one of its threads)."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _group(name: str) -> str:
    return re.sub(r"[-_ ]?\d+$", "", name.strip()) or "unnamed"


def threads(pid: int) -> dict[str, float]:
    """CPU seconds so far per thread group of ``pid``."""
    groups: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text()
            groups[_group(name)] += cpu_s(pid, task.name)
        except OSError:  # the thread ended
            continue
    return dict(groups)


def cores_by_group(before: dict[str, float], after: dict[str, float], window_s: float,
                   top: int = 8) -> dict[str, float]:  # fmt: skip
    """Cores per thread group over the window, the busiest ``top`` and the rest together."""
    delta = Counter({k: after.get(k, 0.0) - before.get(k, 0.0) for k in after})
    busiest = delta.most_common(top)
    rest = sum(delta.values()) - sum(v for _, v in busiest)
    shares = {k: round(v / window_s, 3) for k, v in busiest}
    shares["other threads"] = round(rest / window_s, 3)
    return shares


class Recording:
    """A Java Flight Recorder recording of the broker over a window. It ends by itself after
    ``limit_s`` should :meth:`stop` never come (a profile recording slows the broker)."""

    def __init__(self, pid: int, path: Path, limit_s: int = 900) -> None:
        self.pid, self.path, self.name = pid, path, f"leadscore-bench-{os.getpid()}"
        self.limit_s = limit_s

    @staticmethod
    def available() -> bool:
        return shutil.which("jcmd") is not None and shutil.which("jfr") is not None

    def _jcmd(self, *args: str) -> str:
        command = ["jcmd", str(self.pid), *args]
        done = subprocess.run(command, check=True, capture_output=True, timeout=120, text=True)
        return done.stdout

    def running(self) -> bool:
        return f"name={self.name} " in self._jcmd("JFR.check")

    def start(self) -> None:
        self._jcmd("JFR.start", f"name={self.name}", "settings=profile",
                   f"duration={self.limit_s}s", f"filename={self.path}")  # fmt: skip

    def stop(self) -> None:
        """Ends the recording and writes its file; idempotent."""
        if self.running():
            self._jcmd("JFR.stop", f"name={self.name}")

    def summary(self, top: int = 12) -> dict[str, float]:
        """Each request type's (or thread group's) share of the execution samples."""
        out = subprocess.run(["jfr", "print", "--json", "--stack-depth", "96", "--events",
                              "jdk.ExecutionSample", str(self.path)],
                             check=True, capture_output=True, timeout=300).stdout  # fmt: skip
        events = json.loads(out)["recording"]["events"]
        counts: Counter[str] = Counter()
        for event in events:
            values = event["values"]
            frames = (values.get("stackTrace") or {}).get("frames") or []
            handler = next((f["method"]["name"] for f in frames
                            if f["method"]["type"]["name"].endswith("KafkaApis")
                            and f["method"]["name"].startswith("handle")
                            and f["method"]["name"] != "handle"), None)  # fmt: skip
            thread = (values.get("sampledThread") or {}).get("javaName") or "unnamed"
            counts[handler or f"thread {_group(thread)}"] += 1
        total = sum(counts.values()) or 1
        shares = {k: round(v / total, 3) for k, v in counts.most_common(top)}
        shares["samples"] = total
        return shares
