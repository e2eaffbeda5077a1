"""agrec.run.resources: what a stage's kernel used, read from /proc (fake folders with known contents here;
the pipeline's own record of a real kernel is in tests/test_pipeline.py)."""

import os

import numpy as np
import pytest

from agrec.run import resources
from agrec.run.resources import StageMeter, StageUsage, MachineCPU, machine_cpu_s, process_usage


def _fake_proc(tmp_path, pid=4242, hwm_kb=3072, utime=150, stime=50, busy=(100, 5, 50, 1000, 20, 0, 3, 7)):
    proc = tmp_path / "proc"
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "status").write_text(f"Name:\tpython\nVmPeak:\t 999999 kB\nVmHWM:\t {hwm_kb} kB\nVmRSS:\t 1 kB\n")
    # a command name with a space and a ')' inside: only the last ')' ends it
    fields = ["S", "1", "1", "1", "0", "-1", "4194304", "0", "0", "0", "0", str(utime), str(stime), "7", "9"]
    (proc / str(pid) / "stat").write_text(f"{pid} (py thon) x) " + " ".join(fields) + " 20 0 3\n")
    (proc / "stat").write_text("cpu  " + " ".join(map(str, busy)) + " 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    return proc


@pytest.fixture(autouse=True)
def _hundred_ticks(monkeypatch):
    monkeypatch.setattr(resources, "_clock_ticks", lambda: 100)


def test_process_usage_reads_the_high_water_mark_and_user_plus_system_time(tmp_path):
    proc = _fake_proc(tmp_path)
    assert process_usage(4242, proc) == resources.ProcessUsage(peak_rss_mib=3.0, cpu_s=2.0)


def test_machine_busy_counts_user_nice_system_irq_softirq_and_keeps_steal_apart(tmp_path):
    proc = _fake_proc(tmp_path)
    assert machine_cpu_s(proc) == MachineCPU(busy=pytest.approx((100 + 5 + 50 + 0 + 3) / 100), steal=0.07)


def test_a_kernel_without_the_steal_column_has_no_steal(tmp_path):
    proc = _fake_proc(tmp_path)
    (proc / "stat").write_text("cpu  100 5 50 1000 20 0 3\n")  # Linux before 2.6.11: seven columns
    assert machine_cpu_s(proc) == MachineCPU(busy=pytest.approx(1.58), steal=0.0)


def test_unreadable_proc_gives_none_never_an_error(tmp_path):
    assert process_usage(1, tmp_path / "nowhere") == resources.ProcessUsage(None, None)
    assert machine_cpu_s(tmp_path / "nowhere") is None
    proc = _fake_proc(tmp_path)
    (proc / "4242" / "stat").write_text("garbage")
    (proc / "stat").write_text("intr 1 2 3\n")
    assert process_usage(4242, proc) == resources.ProcessUsage(3.0, None)
    assert machine_cpu_s(proc) is None


def test_meter_attributes_the_rest_of_the_machines_busy_time_to_other_work(tmp_path, monkeypatch):
    proc = _fake_proc(tmp_path, busy=(100, 0, 0, 0, 0, 0, 0, 40))
    own = iter([10.0, 10.5])  # this runner used 0.5 CPU s during the stage
    monkeypatch.setattr(resources, "own_cpu_s", lambda: next(own))
    meter = StageMeter(proc)
    meter.start()
    # the kernel used 2 s (150 + 50 ticks); the machine was busy 1000 - 100 ticks = 9 s in all, and the hypervisor
    # stole 340 - 40 ticks = 3 s, which is nobody's work here
    meter.sample_kernel(4242)
    (proc / "stat").write_text("cpu  1000 0 0 0 0 0 0 340 0 0\n")
    assert meter.usage() == StageUsage(
        peak_rss_mib=3.0, cpu_s=2.0, others_cpu_s=pytest.approx(6.5), steal_s=pytest.approx(3.0)
    )


def test_meter_without_a_kernel_sample_measures_nothing_it_cannot(tmp_path):
    meter = StageMeter(_fake_proc(tmp_path))
    meter.start()
    meter.sample_kernel(None)  # the kernel never started
    # steal needs only the machine's counters (unchanged here); other work needs the kernel's share
    assert meter.usage() == StageUsage(None, None, None, steal_s=0.0)


def test_usage_round_trips_through_the_notebook_stamp_and_refuses_malformed_stamps():
    u = StageUsage(peak_rss_mib=1234.5678, cpu_s=12.34, others_cpu_s=None, steal_s=0.06)
    assert u.to_dict() == {"peak_rss_mib": 1234.6, "cpu_s": 12.3, "others_cpu_s": None, "steal_s": 0.1}
    assert StageUsage.from_dict(u.to_dict()) == StageUsage(1234.6, 12.3, None, 0.1)
    # a stamp written before steal was measured
    assert StageUsage.from_dict({"peak_rss_mib": 1.0, "cpu_s": 2.0, "others_cpu_s": 3.0}) == StageUsage(1.0, 2.0, 3.0)
    assert StageUsage.from_dict({"steal_s": "a lot"}) is None
    assert StageUsage.from_dict(None) is None
    assert StageUsage.from_dict({"peak_rss_mib": "big"}) is None
    assert StageUsage.from_dict({"peak_rss_mib": True}) is None


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_a_live_process_peak_covers_what_it_touched(monkeypatch):
    monkeypatch.undo()  # the real clock ticks

    def rss_mib():
        line = next(x for x in open("/proc/self/status") if x.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    before, rss0 = process_usage(os.getpid()), rss_mib()
    a = np.ones(64 * 2**20 // 8)  # 64 MiB, every page touched
    rss1 = rss_mib()
    after = process_usage(os.getpid())  # after rss1: the high-water mark cannot be below it
    assert rss1 >= rss0 + 60  # the allocation is resident
    # in MiB (a unit slip would be off by 1024) and a high-water mark: at least what is resident now
    assert rss1 <= after.peak_rss_mib <= 64 * 1024 and after.peak_rss_mib >= before.peak_rss_mib
    assert after.cpu_s >= before.cpu_s > 0
    del a
