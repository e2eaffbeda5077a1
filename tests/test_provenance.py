"""The dependency lock: its hash in every stage record, and that it pins what pyproject.toml asks for."""
import hashlib
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from agrec.run.provenance import LOCK_FILE, lock_hash, source_root
from agrec.run.provenance import library_versions

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


def test_cpu_model_names_the_processor_with_family_and_model(tmp_path):
    from agrec.run.provenance import cpu_model

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
                    "model name\t: AMD EPYC\nflags\t\t: fpu avx2\n\nprocessor\t: 1\nmodel name\t: Other\n")
    assert cpu_model(info) == "AMD EPYC (family 25, model 17)"
    info.write_text("processor\t: 0\nmodel name\t: Some ARM core\n")
    assert cpu_model(info) == "Some ARM core"


def test_machine_info_reports_torch_dispatch_only_where_torch_is_loaded(monkeypatch):
    import sys

    import torch

    from agrec.run.provenance import machine_info

    info = machine_info()
    assert info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["torch_threads"] == torch.get_num_threads() and info["cpu_count"] >= 1
    monkeypatch.delitem(sys.modules, "torch")
    assert machine_info()["torch_cpu_capability"] is None and machine_info()["torch_threads"] is None
