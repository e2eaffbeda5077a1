"""Inner progress of a running stage, shown in the terminal that runs ``agrec run`` / ``report`` / ``sweep``.

A stage runs in a notebook kernel (a separate process), so its tqdm bars never reach the CLI's terminal. Instead,
each long inner loop (GNN / LM / RQ-VAE epochs, decoding users, embedding items) reports through a :class:`Task`,
which appends one JSON line per event to the file named by the environment variable ``AGREC_PROGRESS_FILE``
(nothing at all when the variable is unset: a notebook opened by hand, a test). The runner sets the variable for
the kernel it starts and follows the file in a thread (:func:`follow`), printing

- on a terminal: one line per task, updated in place (``\\r``) with n/total, rate and ETA;
- in a log (not a TTY): one line per *milestone* (an epoch, an evaluation) and one when a task ends, plus a
  heartbeat at most every ``heartbeat_s`` while a task runs without milestones — never a flood.

Event (one JSON object per line)::

    {"task": "lightgcn", "unit": "epoch", "n": 3, "n0": 0, "total": 4, "elapsed_s": 1.5, "rate": 2.0,
     "event": "update" | "end", "milestone": true, "info": {"loss": "0.4921"}}

``n`` counts units done in this task (resumed units included); ``rate`` is units per second over the units
done since the task started here, so a resumed run's ETA is not flattered by the units it skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Iterator

ENV_VAR = "AGREC_PROGRESS_FILE"


class Task:
    """One inner loop's progress, written to ``$AGREC_PROGRESS_FILE`` (a no-op when it is unset).

    Args:
        name: shown before the counts (``"lightgcn"``, ``"lm"``, ``"decode"``).
        total: units to do, or None when unknown.
        unit: ``"epoch"``, ``"step"``, ``"user"``, ``"item"``.
        initial: units already done (a resumed run).
        min_interval_s: non-milestone updates closer together than this are not written (a decoding batch
            loop may update hundreds of times a second).
        path: the events file (default: the environment variable).
    """

    def __init__(
        self,
        name: str,
        total: int | None,
        unit: str,
        initial: int = 0,
        min_interval_s: float = 0.5,
        path: str | os.PathLike | None = None,
    ):
        self.name, self.total, self.unit = name, total, unit
        self.n = self.n0 = int(initial)
        self.min_interval_s = min_interval_s
        target = path if path is not None else os.environ.get(ENV_VAR)
        self.path = Path(target) if target else None
        self.t0 = time.perf_counter()
        self._last_write = float("-inf")
        self.closed = False

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def update(self, n: int | None = None, advance: int = 0, milestone: bool = False, **info: Any) -> None:
        """Set the count to ``n`` (or add ``advance``); ``milestone`` marks an epoch/evaluation boundary (always
        written, one line in a log). ``info``: short key/value pairs shown after the counts (loss …)."""
        self.n = int(n) if n is not None else self.n + int(advance)
        if not self.enabled:
            return
        now = time.perf_counter()
        if milestone or now - self._last_write >= self.min_interval_s:
            self._write("update", milestone, info, now)

    def close(self, **info: Any) -> None:
        """The task ended (written once, always shown)."""
        if self.closed:
            return
        self.closed = True
        if self.enabled:
            self._write("end", False, info, time.perf_counter())

    def __enter__(self) -> "Task":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _write(self, event: str, milestone: bool, info: dict[str, Any], now: float) -> None:
        path = self.path
        if path is None:  # not enabled (callers check), or a failed write turned reporting off
            return
        self._last_write = now
        elapsed = now - self.t0
        done_here = self.n - self.n0
        rec = {
            "task": self.name,
            "unit": self.unit,
            "n": self.n,
            "n0": self.n0,
            "total": self.total,
            "elapsed_s": round(elapsed, 3),
            "rate": round(done_here / elapsed, 4) if elapsed > 0 else None,
            "event": event,
            "milestone": milestone,
            "info": {k: _short(v) for k, v in info.items()},
        }
        line = json.dumps(rec, separators=(",", ":")) + "\n"
        # One write of one whole line in append mode: the follower never sees a line it cannot parse (it waits
        # for the newline), and a failure to report progress must never fail the stage.
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line)
        except OSError:
            self.path = None


def _short(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.4g}"
    return v if isinstance(v, (int, str, bool)) or v is None else str(v)


def _duration(s: float) -> str:
    s = max(0.0, float(s))
    if s < 60:
        return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
    m, s = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}:{s:02d}"
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def format_event(ev: dict[str, Any]) -> str:
    """``lm: step 40/120 (33%), 12.1 step/s, 3.3 s elapsed, ETA 6.6 s, loss=3.21`` (no line end)."""
    n, total, unit = ev["n"], ev.get("total"), ev["unit"]
    parts = [f"{unit} {n}/{total} ({100 * n / total:.0f}%)" if total else f"{n} {unit}s"]
    rate = ev.get("rate")
    if rate:
        parts.append(f"{rate:.3g} {unit}/s" if rate >= 1 else f"{1 / rate:.3g} s/{unit}")
    elapsed = float(ev.get("elapsed_s") or 0.0)
    if ev.get("event") == "end" and n == ev.get("n0") and n:
        parts = parts[:1] + ["nothing left to do (resumed from a checkpoint)"]
    elif ev.get("event") == "end":
        parts.append(f"done in {_duration(elapsed)}")
    else:
        parts.append(f"{_duration(elapsed)} elapsed")
        if total and rate:
            parts.append(f"ETA {_duration((total - n) / rate)}")
    info = ev.get("info") or {}
    text = f"{ev['task']}: " + ", ".join(parts)
    if info:
        text += ", " + " ".join(f"{k}={v}" for k, v in info.items())
    return text


class Follower:
    """Reads the events file as it grows and prints the events to ``stream`` (see the module doc).

    ``poll()`` handles what arrived since the last call (the thread calls it every ``interval_s``; tests call
    it directly)."""

    def __init__(
        self,
        path: Path,
        stream: IO[str] | None = None,
        tty: bool | None = None,
        prefix: str = "    ",
        heartbeat_s: float = 60.0,
    ):
        self.path, self.stream = Path(path), stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.prefix, self.heartbeat_s = prefix, heartbeat_s
        self._offset, self._partial = 0, ""
        self._open_line = False  # TTY: a line is being updated in place
        self._last_print = time.monotonic()
        self._latest: dict[str, Any] | None = None  # the last event not yet printed (log mode heartbeat)

    def poll(self) -> int:
        """Handle new complete lines; returns how many events were read."""
        try:
            with open(self.path, encoding="utf-8") as f:
                f.seek(self._offset)
                chunk = f.read()
                self._offset = f.tell()
        except FileNotFoundError:
            chunk = ""
        n = 0
        if chunk:
            lines = (self._partial + chunk).split("\n")
            self._partial = lines.pop()  # the text after the last newline: not complete yet
            for line in lines:
                if not line.strip():
                    continue
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    continue  # not an event (a foreign line): progress display is best effort
                self._show(ev)
                n += 1
        if not self.tty and self._latest is not None and time.monotonic() - self._last_print >= self.heartbeat_s:
            self._print(self._latest)
        return n

    def _show(self, ev: dict[str, Any]) -> None:
        if self.tty:
            self.stream.write("\r" + self.prefix + format_event(ev) + "\x1b[K")
            self._open_line = True
            if ev.get("event") == "end":
                self.stream.write("\n")
                self._open_line = False
            self.stream.flush()
        elif ev.get("milestone") or ev.get("event") == "end":
            self._print(ev)
        else:
            self._latest = ev

    def _print(self, ev: dict[str, Any]) -> None:
        self.stream.write(self.prefix + format_event(ev) + "\n")
        self.stream.flush()
        self._last_print = time.monotonic()
        self._latest = None

    def finish(self) -> None:
        """Read what is left and end an in-place line."""
        self.poll()
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False


@contextlib.contextmanager
def follow(
    path: Path, stream: IO[str] | None = None, tty: bool | None = None, interval_s: float = 0.5, enabled: bool = True
) -> Iterator[Follower | None]:
    """Set ``$AGREC_PROGRESS_FILE`` to ``path`` for child processes started inside the block (the stage's
    kernel) and print its events from a thread until the block ends; the file is removed afterwards."""
    if not enabled:
        yield None
        return
    path = Path(path)
    path.unlink(missing_ok=True)
    follower = Follower(path, stream, tty)
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            follower.poll()

    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = str(path)
    thread = threading.Thread(target=loop, name="agrec-progress", daemon=True)
    thread.start()
    try:
        yield follower
    finally:
        stop.set()
        thread.join()
        follower.finish()
        if old is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = old
        path.unlink(missing_ok=True)


def kernel_ipc_config(folder: str | os.PathLike):
    """traitlets config for papermill/nbclient: the kernel's sockets are local IPC files instead of TCP ports,
    so ipykernel has no reason to warn "Kernel is running over TCP without encryption" (it warns once per
    kernel; the runner starts one per stage).

    The connection file and the sockets beside it (``kernel-ipc-N``) live in ``folder``, a private folder of
    one execution: left to their defaults, the sockets are created in the working directory under the same
    names by every kernel started there, so two runs from one folder would talk to each other's kernels.
    """
    from traitlets.config import Config

    c = Config()
    c.KernelManager.transport = "ipc"
    c.KernelManager.connection_file = os.path.join(os.fspath(folder), "kernel.json")
    return c
