"""The contenders of the side-by-side benchmark and how each one is started.

- ``pipe-aiokafka``: ``bench/ceiling.py``, a plain aiokafka consume -> decode -> produce pipe;
- ``pipe-confluent`` / ``pipe-confluent-txn``: ``bench/pipe_confluent.py``, the same pipe on
  confluent-kafka, at least once, and with a transaction every 100 ms carrying the offsets;
- ``ours``: the service as shipped (``leadscore worker``), default settings (``make bench``
  compiles its core first; the core it ran is in the results);
- ``ours-wave2``: the same worker and build on the second-wave plan (:data:`WAVE2_PLAN`: decay,
  tiers, account and deal roll-ups), on the same inputs, so its figures stand beside ``ours``'s;
- ``leadscore@<commit>``: the same worker from another commit (``--base``, ``make bench``'s
  ``BENCH_BASE``, default 3f54bb3: the commit before issue 24), run the same way in the same run
  from a tree of that commit with its own compiled core (``bench/trees.py``), on this venv;
- ``faust-baseline``: the last Faust worker (``--baseline``, commit 2110d38) from a
  ``git archive``, in a venv of its own built from that commit's pins (``bench/faust_venv.sh``);
- ``quix-alo`` / ``quix-eos``: Quix Streams in its own venv running the same pure core
  (``bench/peer_quix.py``), at-least-once and exactly-once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import broker_cpu
from kafkaio import TopicSet

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "plans" / "reference.yaml"
#: The plan of ``ours-wave2``: the reference plan with decay, tiers and roll-ups into accounts
#: and deals (``bench/core.py``'s second plan too).
WAVE2_PLAN = ROOT / "plans" / "reference-second-wave.yaml"
#: Quix Streams' start-up race with its own new topics (see ``Process.check``)
RACE = "TopicNotFoundError"
#: At most this many starts again: Quix makes four topics of its own per phase at most
RELAUNCHES = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Process:
    """A contender's process, with its CPU time and peak RSS read from /proc."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int | None = None
    started: float = field(default_factory=time.monotonic)
    #: starts the process again (Quix Streams: see :meth:`check`)
    relaunch: Callable[[], subprocess.Popen[bytes]] | None = None
    relaunched: int = 0

    def cpu_s(self) -> float:
        return broker_cpu.cpu_s(self.proc.pid)

    def rss_mib(self, field_name: str = "VmHWM") -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check(self) -> None:
        if not self.alive():
            tail = self.log.read_text(errors="replace")[-3000:]
            if self.relaunch is not None and RACE in tail and self.relaunched < RELAUNCHES:
                # Quix Streams creates its repartition and changelog topics, then lists the
                # broker's topics at once: on a busy broker the new one may not be listed yet
                # and it exits. Started again, it finds the topics made so far (each start can
                # lose the race on the next one of its topics).
                self.relaunched += 1
                print(f"{self.name}: exited at start-up ({RACE}): started again", flush=True)
                self.proc = self.relaunch()
                return
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def ready(self) -> bool:
        """Only the service has a readiness endpoint; the others are ready once running."""
        if self.port is None:
            return self.alive()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        """The worker's Prometheus text (empty if it has no port or cannot answer)."""
        if self.port is None:
            return ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    def member_updates_pending(self) -> float:
        """Roll-up member updates the worker sent and has not received back yet
        (``leadscore_member_updates``; 0 without the metric: no roll-ups, or another worker)."""
        counts = {"sent": 0.0, "received": 0.0}
        for line in self.metrics().splitlines():
            if line.startswith("leadscore_member_updates_total{"):
                for direction in counts:
                    if f'direction="{direction}"' in line:
                        counts[direction] = float(line.rsplit(" ", 1)[1])
        return counts["sent"] - counts["received"]

    def core_build(self) -> str | None:
        """The scoring-core build the worker reports (``leadscore_build_info``), if any."""
        for line in self.metrics().splitlines():
            if line.startswith("leadscore_build_info{") and 'core="' in line:
                return line.split('core="', 1)[1].split('"', 1)[0]
        return None

    def stop(self, timeout_s: float = 60) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@dataclass(frozen=True)
class Contender:
    name: str
    kind: str  # "pipe" | "service" | "quix"
    guarantee: str = ""  # for quix
    script: str = "ceiling.py"  # for a pipe
    extra: tuple[str, ...] = ()  # for a pipe
    source_dir: Path = ROOT  # for the service: the tree whose streams/ runs (baseline: a checkout)
    python: str = sys.executable
    settings: tuple[tuple[str, str], ...] = ()  # for the service: extra LEADSCORE_* settings

    @property
    def slug(self) -> str:
        """The name as topic names may hold it (``leadscore@3f54bb3``: ``leadscore-3f54bb3``)."""
        return self.name.replace("@", "-")

    def start(self, bootstrap: str, topics: TopicSet, tag: str, workdir: Path) -> Process:
        workdir.mkdir(parents=True, exist_ok=True)
        log = workdir / f"{self.name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSCORE_")}
        port = None
        inputs = ",".join(topics.inputs)
        if self.kind == "pipe":
            argv = [
                self.python,
                str(ROOT / "bench" / self.script),
                *self.extra,
                "--bootstrap",
                bootstrap,
                "--group",
                tag,
                "--inputs",
                inputs,
                "--output",
                topics.changed,
            ]
        elif self.kind == "quix":
            argv = [
                self.python,
                str(ROOT / "bench" / "peer_quix.py"),
                "--bootstrap",
                bootstrap,
                "--plan",
                str(PLAN),
                "--group",
                tag,
                "--state-dir",
                str(workdir / "state"),
                "--guarantee",
                self.guarantee,
                "--inputs",
                inputs,
                "--score-changed",
                topics.changed,
                "--scores",
                topics.scores,
                "--repartition-prefix",
                tag,
            ]
        else:
            port = free_port()
            argv = [self.python, "-m", "streams.cli", "worker"]
            env.update(service_env(bootstrap, topics, tag, workdir / "data", port))
            env.update(self.settings)
        env["PYTHONPATH"] = str(ROOT / "bench")

        def launch() -> subprocess.Popen[bytes]:
            with log.open("ab") as out:
                return subprocess.Popen(
                    argv, cwd=self.source_dir, env=env, stdout=out, stderr=subprocess.STDOUT
                )

        return Process(self.name, launch(), log, port,
                       relaunch=launch if self.kind == "quix" else None)  # fmt: skip

    def group(self, tag: str) -> str:
        """The consumer group that reads the input topics."""
        return tag


#: The core build of a ``leadscore@<commit>`` contender: compiled, or failing at start-up.
COMPILED = (("LEADSCORE_CORE", "compiled"),)
#: ``--smoke`` runs it on its pure core: a mypyc build of another tree costs about a minute.
PURE = (("LEADSCORE_CORE", "pure"),)


def leadscore_at(rev: str, *, compiled: bool = True) -> Contender:
    """The ``leadscore@<rev>`` contender: that commit's worker, from the tree ``prepare`` makes,
    its core compiled (or pure: ``compiled=False``)."""
    import trees  # bench/trees.py

    return Contender(f"leadscore@{rev}", "service", source_dir=trees.tree_path(rev),
                     settings=COMPILED if compiled else PURE)  # fmt: skip


def build_of(who: Contender) -> str:
    """What :func:`prepare` builds for ``who``: contenders with the same build share it."""
    if who.kind == "quix":
        return "quix_venv.sh"
    if who.name == "faust-baseline":
        return "faust_venv.sh"
    if who.name.startswith("leadscore@"):
        return f"{who.name} {dict(who.settings).get('LEADSCORE_CORE')}"
    return ""


def prepare(who: Contender) -> str:
    """Build what ``who`` runs from, once (each step is idempotent and cached in
    ``.cache/bench``): the Quix Streams venv, the faust-baseline tree and venv, or a
    ``leadscore@<commit>`` tree and its compiled core. Returns what it did, for the log."""
    import trees  # bench/trees.py

    if who.kind == "quix":
        script = "quix_venv.sh"
    elif who.name == "faust-baseline":
        script = "faust_venv.sh"
    elif who.name.startswith("leadscore@"):
        tree = trees.export(who.name.removeprefix("leadscore@"))
        if dict(who.settings).get("LEADSCORE_CORE") == "pure":
            return "tree exported, core pure"
        if not trees.compile_core(tree):
            raise SystemExit(f"{who.name}: the commit has no core build script")
        return "tree exported, core compiled"
    else:
        return "nothing to build"
    done = subprocess.run([str(ROOT / "bench" / script)], capture_output=True, text=True,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"bench/{script} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return f"bench/{script}: {done.stdout.strip().splitlines()[-1]}"


def service_env(
    bootstrap: str, topics: TopicSet, app_id: str, data_dir: Path, port: int
) -> dict[str, str]:
    names = (
        "PAGE_VISITS",
        "EMAIL_EVENTS",
        "PURCHASES",
        "DEAL_STAGE_CHANGES",
        "CONTACT_PROFILES",
        "SCORE_ADJUSTMENTS",
    )  # streams.wire.codec.Source order
    env = {f"LEADSCORE_TOPIC_{n}": t for n, t in zip(names, topics.inputs, strict=True)}
    env.update(
        {
            "LEADSCORE_BOOTSTRAP_SERVERS": bootstrap,
            "LEADSCORE_APP_ID": app_id,
            "LEADSCORE_PLAN_PATH": str(PLAN),
            "LEADSCORE_DATA_DIR": str(data_dir),
            "LEADSCORE_TOPIC_SCORE_CHANGED": topics.changed,
            "LEADSCORE_TOPIC_SCORES": topics.scores,
            "LEADSCORE_TOPIC_DEAD_LETTERS": topics.dead,
            "LEADSCORE_WEB_PORT": str(port),
            "LEADSCORE_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }
    )
    return env
