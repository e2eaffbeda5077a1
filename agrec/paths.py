"""Path safety: names that become folders stay single, harmless path components under their root.

Two kinds of configured strings end up in paths:

- *roots* (``pipeline.runs_dir``, ``pipeline.reports_dir``, ``semantic_ids.embedding_cache``, ``data.path``)
  are folders the user chooses; they may be relative or absolute. They only have to be real path strings
  (:func:`check_path`: no NUL or control characters, not empty).
- *names* (the profile ``name``, ``data.dataset``) become one folder (or file prefix) below a root:
  ``runs/<dataset>/<name>/``. They must be a single component (:func:`check_name`): no separator, not
  ``.`` / ``..``, no NUL or control character, so that nothing is ever written outside the roots.

Free-form values that must become a folder name (a sweep point ``decode.top_n=10``) go through
:func:`safe_component`, which keeps readable ones as they are and encodes the rest with a short hash.
:func:`safe_join` builds a path from a root and names and asserts that the result is under the root.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

from agrec.errors import ConfigError

# Most file systems limit one component to 255 bytes; keep a margin for suffixes such as ".inter.json".
MAX_NAME_BYTES = 200
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._=,+@-]+")


def _bad_char(value: str) -> str | None:
    """The first NUL / control / separator-like character in ``value`` (None when there is none)."""
    for ch in value:
        if ch == "\0" or unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            return ch
    return None


def check_path(value: str, key: str) -> str:
    """A root folder or file path from a profile: any relative or absolute path, but a real one."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} must be a non-empty path, got {value!r}")
    ch = _bad_char(value)
    if ch is not None:
        raise ConfigError(f"{key} contains the control character {ch!r}, got {value!r}")
    return value


def check_name(value: str, key: str) -> str:
    """A name that becomes one path component below a root (``runs/<dataset>/<name>``)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} must be a non-empty name, got {value!r}")
    ch = _bad_char(value)
    if ch is not None:
        raise ConfigError(f"{key} contains the control character {ch!r}, got {value!r}")
    if "/" in value or "\\" in value or os.sep in value or (os.altsep and os.altsep in value):
        raise ConfigError(f"{key} must be a single folder name without '/' or '\\', got {value!r}")
    if value in (".", "..") or value != value.strip():
        raise ConfigError(
            f"{key} must be a plain folder name (not '.', '..', no leading or trailing blanks), got {value!r}"
        )
    if len(value.encode("utf-8")) > MAX_NAME_BYTES:
        raise ConfigError(
            f"{key} is too long for a folder name ({len(value.encode('utf-8'))} bytes, at most {MAX_NAME_BYTES})"
        )
    return value


def safe_component(text: str, max_len: int = 80) -> str:
    """A folder name for arbitrary ``text``: itself when it is already safe and short, otherwise a
    sanitised form plus 8 hex digits of its sha256 (so distinct texts never share a folder).

    >>> safe_component("decode.top_n=10")
    'decode.top_n=10'
    >>> safe_component("data.dataset=../..").startswith("data.dataset=.._..-")
    True
    """
    clean = _SAFE_CHARS.sub("_", text)
    if clean.startswith("."):
        clean = "_" + clean  # never '.', '..' or a hidden folder
    if clean == text and 0 < len(clean) <= max_len:
        return clean
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{clean[:max_len]}-{digest}"


def is_under(path: Path, root: Path) -> bool:
    """Whether ``path`` lies inside ``root`` (both made absolute and normalised, lexically)."""
    p, r = Path(os.path.normpath(os.path.abspath(path))), Path(os.path.normpath(os.path.abspath(root)))
    return p == r or r in p.parents


def safe_join(root: str | os.PathLike, *parts: str, key: str = "name") -> Path:
    """``root / part / …`` where each part is a single safe name (see :func:`check_name`); raise a
    :class:`ConfigError` naming ``key`` otherwise, and assert the result stays under ``root``."""
    root = Path(root)
    for part in parts:
        check_name(part, key)
    out = root.joinpath(*parts)
    if not is_under(out, root):  # cannot happen after check_name; kept as the last line of defence
        raise ConfigError(f"{key}: {out} is outside {root}")
    return out
