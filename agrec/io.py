"""Atomic file writes: a reader never sees a half-written artefact.

Everything is written to a temporary file in the destination folder and then renamed over the
target (``os.replace`` is atomic on POSIX within one file system). On error the temporary file is
removed, so a failed run leaves nothing behind.

A process killed outright (SIGKILL, out of memory, a power cut) runs no handler, so its temporary file
stays. Every temporary name therefore carries its writer, ``.<name>.pid<pid>@<host>.<random>.tmp<suffix>``
(:func:`writer_tag`), and :func:`remove_orphaned_temps` removes those whose writer is gone from this host:
a stage that recomputes sweeps its folders first (:meth:`agrec.run.rundir.RunDir.invalidate`). A temporary
file of a live process, or of another host sharing the folder, is never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator
from agrec.errors import AgrecError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    Use it for writers that want a file name (``torch.save``, ``df.to_csv``, ``fig.savefig``).
    ``suffix`` defaults to the target's suffix so that writers that infer the format from it work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the real suffix last: writers such as savefig infer the format from it
    fd, tmp = tempfile.mkstemp(
        prefix=temp_prefix(path.name), suffix=suffix if suffix is not None else ".tmp" + path.suffix, dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; artefacts get the usual permissions (0666 less the umask).
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_safetensors(
    path: str | os.PathLike, tensors: dict[str, Any], metadata: dict[str, str] | None = None
) -> Path:
    """Write ``tensors`` (name -> contiguous CPU tensor) and ``metadata`` as a safetensors file, atomically, with
    a canonical header: the same tensors and metadata always give the same bytes.

    safetensors serialises its JSON header from a hash map whose order changes from one map to the next, so
    two writes of identical weights could differ in bytes (and in sha256). The header is re-serialised with
    sorted keys into the same number of bytes (only the order changes; the data offsets are untouched).
    """
    from safetensors.torch import save

    data = save(tensors, metadata=metadata)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    canon = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(canon) <= n:  # equal up to the trailing spaces safetensors pads with; otherwise keep its own header
        data = data[:8] + canon + b" " * (n - len(canon)) + data[8 + n :]
    return atomic_write_bytes(path, data)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only if the block succeeds.

    For artefacts that are folders (checkpoints written by ``save_pretrained``). An existing
    ``path`` is replaced as a whole, never merged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            # a temporary name too: a kill between the two renames leaves it to the orphan sweep
            old = path.with_name(f"{temp_prefix(path.name)}old.tmp")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- temporary names and the leftovers of killed writers ---------------------------------------------------
# The host is hashed: a host name may hold dots, and only equality matters (a pid says nothing on another host).
_HOST = hashlib.sha256(socket.gethostname().encode("utf-8")).hexdigest()[:8]
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.pid(?P<pid>[0-9]+)@(?P<host>[0-9a-f]{8})\.(?:.*\.)?tmp(?:\..*)?$")


def writer_tag() -> str:
    """``pid<pid>@<host hash>``: the process writing a temporary file, as its name carries it."""
    return f"pid{os.getpid()}@{_HOST}"


def temp_prefix(name: str) -> str:
    """The start of every temporary name this process uses for the artefact ``name``: ``.<name>.<writer>.``
    (hidden, so that artefact listings skip it)."""
    return f".{name}.{writer_tag()}."


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (someone else's process counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphan_writer(path: str | os.PathLike) -> int | None:
    """The pid of the gone writer whose temporary file (or folder) ``path`` is, or None: not a temporary name of
    ours, written on another host, or by a process that still exists (this one included)."""
    m = _TEMP_NAME.match(Path(path).name)
    if m is None or m["host"] != _HOST:
        return None
    pid = int(m["pid"])
    return pid if pid != os.getpid() and not pid_alive(pid) else None


def _orphans(folder: str | os.PathLike, recursive: bool) -> list[tuple[Path, int]]:
    """(path, gone writer's pid) of :func:`orphaned_temps`, sorted by path: each name's writer is checked once."""
    found: list[tuple[Path, int]] = []
    pending = [Path(folder)]
    while pending:
        try:
            entries = sorted(os.scandir(pending.pop()), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            if e.is_symlink():
                continue
            pid = orphan_writer(e.path)
            if pid is not None:
                found.append((Path(e.path), pid))
            elif recursive and e.is_dir():
                pending.append(Path(e.path))
    return sorted(found)


def orphaned_temps(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """The temporary files and folders under ``folder`` (its direct entries, or every level with ``recursive``)
    whose writer is gone, sorted. Symbolic links are neither followed nor reported."""
    return [p for p, _ in _orphans(folder, recursive)]


def remove_orphaned_temps(
    folder: str | os.PathLike,
    recursive: bool = False,
    log: Callable[[str], None] | None = None,
    dry_run: bool = False,
) -> list[Path]:
    """Remove :func:`orphaned_temps` of ``folder``; each is named in ``log`` with its size and writer. Returns
    what was removed (with ``dry_run``: what would be, and nothing is removed)."""
    removed = []
    for p, pid in _orphans(folder, recursive):
        try:
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
            if not dry_run:
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
        except FileNotFoundError:  # removed meanwhile by another sweep
            continue
        removed.append(p)
        if log is not None:
            verb = "would remove" if dry_run else "removed"
            log(f"{verb} {p} ({size / 2**20:.1f} MiB): left by process {pid}, which is gone")
    return removed


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths show up in records; everything else is a bug worth surfacing.
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def read_json_file(path: str | os.PathLike, remedy: str = "") -> Any:
    """The JSON value in ``path``; a file that cannot be read or is not JSON is an :class:`AgrecError` naming it
    (``remedy``, when given, is appended to the message: what to rerun)."""

    path = Path(path)
    tail = f"; {remedy}" if remedy else ""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise AgrecError(f"{path}: cannot be read ({e}){tail}") from None
    except json.JSONDecodeError as e:
        raise AgrecError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}){tail}") from None


def check_format(path: str | os.PathLike, found: Any, what: str, newest: int, oldest: int = 1, remedy: str = "") -> int:
    """The layout version ``found`` of a file this agrec reads (``"format"`` of a stage record or a results file),
    accepted when it is an integer in ``[oldest, newest]``; otherwise an :class:`AgrecError` naming ``path`` and
    ``what``. A newer format is never read as if it were one of ours (and never overwritten as if absent): it was
    written by a newer agrec. ``remedy`` (what to rerun) is appended to the other refusals."""
    tail = f"; {remedy}" if remedy else ""
    if not isinstance(found, int) or isinstance(found, bool) or found < 1:
        raise AgrecError(f"{path}: {what} format {found!r} is not a positive integer{tail}")
    if found > newest:
        raise AgrecError(
            f"{path}: {what} format {found} was written by a newer agrec (this one reads up to {newest}); "
            f"upgrade agrec{', or ' + remedy if remedy else ''}"
        )
    if found < oldest:
        raise AgrecError(f"{path}: {what} format {found} is older than this agrec reads ({oldest}){tail}")
    return found
