"""One writer per run directory: an exclusive lock on ``<run dir>/.lock``.

Every command that writes into a run directory (``agrec run``, ``report``, ``seeds``, ``sweep``, the LM and
decode launchers, and a notebook's :func:`agrec.run.session.open_session`) holds this lock while it works. A second
writer is refused at once with :class:`RunLockedError`, which names the holder (pid, command, since when)
as it wrote itself into the lock file.

Why ``fcntl.flock`` (the standard library) and not a lock file whose existence is the lock: the kernel releases
a ``flock`` when its process dies, however it dies (``kill -9``, out of memory), so a lock left by a killed
process is never in the way and no stale-lock heuristics (pid reuse, clocks) are needed. The file itself stays
in place (removing it would let two processes lock two different files of the same name).

Children of a holder are part of the same job: the notebook kernels that ``agrec run`` starts, the processes
of a ``torchrun`` launch. They inherit the held folders through the environment variable ``AGREC_RUN_LOCKS``
and do not lock again. Within one process the lock is re-entrant (``agrec seeds`` holds the base run folder
and runs the pipeline on it).
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from agrec.errors import AgrecError
from agrec.run.rundir import writable_error

LOCK_NAME = ".lock"
ENV_VAR = "AGREC_RUN_LOCKS"
_COMMAND_CHARS = 300  # what a holder records of its command line (the error message stays short)

# folder (resolved) -> [open lock file descriptor, re-entry count] of this process
_held: dict[str, list[int]] = {}
# How this process describes itself to a refused writer (the CLI sets it to "agrec run --config …").
_command: str | None = None


def describe_process(command: str) -> None:
    """Set what the locks this process takes say about it (default: its ``sys.argv``)."""
    global _command
    _command = command


class RunLockedError(AgrecError):
    """Another process writes into this run directory."""


def _key(folder: Path) -> str:
    return str(Path(folder).resolve())


def inherited() -> set[str]:
    """The folders a parent process holds for this one (``AGREC_RUN_LOCKS``)."""
    return {p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p}


def is_held(folder: str | Path) -> bool:
    """True when this process, or the job it belongs to, holds ``folder``'s lock."""
    key = _key(Path(folder))
    return key in _held or key in inherited()


def holder(folder: str | Path) -> dict[str, object] | None:
    """What the last holder wrote into the lock file (pid, command, since, host); None if unreadable."""
    try:
        info = json.loads((Path(folder) / LOCK_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe(info: dict[str, object] | None) -> str:
    if not info:
        return "another process (it left no description)"
    cmd = str(info.get("command", "?"))
    if len(cmd) > 120:
        cmd = cmd[:117] + "..."
    host = f" on {info['host']}" if info.get("host") else ""
    return f"pid {info.get('pid', '?')}{host} ({cmd}), since {info.get('since', '?')}"


def acquire(folder: str | Path, command: str | None = None) -> None:
    """Take ``folder``'s writer lock (creating the folder), or raise :class:`RunLockedError` naming the holder.

    Re-entrant within a process; a folder inherited from a parent process (see the module docstring) is
    not locked again. Pair every call with :func:`release`, or use :func:`locked`.
    """
    folder = Path(folder)
    key = _key(folder)
    if key in _held:
        _held[key][1] += 1
        return
    if key in inherited():
        _held[key] = [-1, 1]  # the parent's lock covers us; -1: no descriptor of our own
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise writable_error(folder, e) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunLockedError(
            f"{folder} is in use by another agrec writer: {_describe(holder(folder))}. "
            f"Wait for it to finish or stop it; one writer per run folder keeps its stages "
            f"and reports from mixing two runs"
        ) from None
    except OSError as e:  # a file system without flock support
        os.close(fd)
        raise RunLockedError(
            f"{folder}: cannot lock {LOCK_NAME} ({e.strerror}); put pipeline.runs_dir on a local file system"
        ) from None
    text = command if command is not None else _command if _command is not None else " ".join(sys.argv)
    info = {
        "pid": os.getpid(),
        "command": text[:_COMMAND_CHARS],
        "host": socket.gethostname(),
        "since": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode() + b"\n", 0)
    _held[key] = [fd, 1]
    os.environ[ENV_VAR] = os.pathsep.join(sorted(inherited() | {key}))


def release(folder: str | Path) -> None:
    """Undo one :func:`acquire` of ``folder``; the last one unlocks it."""
    key = _key(Path(folder))
    entry = _held.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] > 0:
        return
    del _held[key]
    fd = entry[0]
    if fd < 0:
        return
    os.environ[ENV_VAR] = os.pathsep.join(sorted(inherited() - {key}))
    try:
        os.ftruncate(fd, 0)  # the description is of a holder that is gone
    except OSError:
        pass
    os.close(fd)  # closing the descriptor releases the flock


@contextmanager
def locked(folder: str | Path, command: str | None = None) -> Iterator[None]:
    """Hold ``folder``'s writer lock for the ``with`` block."""
    acquire(folder, command)
    try:
        yield
    finally:
        release(folder)
