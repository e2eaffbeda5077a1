"""The dependency lock: its hash in every stage record, and that it pins what pyproject.toml asks for."""
import hashlib
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from agrec.provenance import LOCK_FILE, lock_hash, source_root
from agrec.rundir import library_versions

ROOT = Path(__file__).resolve().parents[1]


def test_lock_hash_reads_the_lock_file(tmp_path):
    assert lock_hash(tmp_path) is None  # no lock (e.g. an installed wheel)
    (tmp_path / "requirements").mkdir()
    (tmp_path / LOCK_FILE).write_bytes(b"numpy==2.4.6\n")
    assert lock_hash(tmp_path) == hashlib.sha256(b"numpy==2.4.6\n").hexdigest()
    assert source_root() == ROOT


def test_library_versions_carry_the_lock_hash():
    expected = hashlib.sha256((ROOT / "requirements" / "cpu.lock").read_bytes()).hexdigest()
    assert library_versions()["cpu_lock_sha256"] == expected


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / LOCK_FILE).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith((" ", "#", "-")):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_lock_pins_every_dependency_within_pyproject_bounds():
    """Fails when a dependency was added or re-bounded in pyproject.toml without `make lock`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = _pins()
    for spec in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in {LOCK_FILE}: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} violates {spec!r}"
    assert pins["torch"] == "2.13.0"  # the CPU path's torch, without the wheel's local tag (see Makefile)
