"""common.allocator: freed tensor memory stays in the process (glibc's mallopt and MALLOC_*_ variables)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from recsec_lib.common import allocator
from recsec_lib.common.allocator import MMAP_THRESHOLD_BYTES, SETTINGS, TRIM_THRESHOLD_BYTES, keep_freed_memory

VARIABLES = [variable for variable, _, _ in SETTINGS]


class FakeLibc:
    """Records mallopt calls; answers ``code`` (glibc: 1 on success, 0 on a refused value)."""

    def __init__(self, code: int = 1):
        self.calls: list[tuple[int, int]] = []
        self.code = code

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return self.code


@pytest.fixture
def fake_glibc(monkeypatch):
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    libc = FakeLibc()
    monkeypatch.setattr(allocator, "is_glibc", lambda: True)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: libc)
    return libc


def test_glibc_gets_both_thresholds_in_this_process_and_its_children(fake_glibc):
    assert keep_freed_memory() is True
    # M_MMAP_THRESHOLD is -3 and M_TRIM_THRESHOLD -1 in glibc's malloc.h
    assert fake_glibc.calls == [(-3, 32 * 1024 * 1024), (-1, 256 * 1024 * 1024)]
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == str(MMAP_THRESHOLD_BYTES)
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == str(TRIM_THRESHOLD_BYTES)


def test_a_value_the_user_set_wins(fake_glibc, monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")  # glibc read it when the process started
    assert keep_freed_memory() is True
    assert fake_glibc.calls == [(-3, MMAP_THRESHOLD_BYTES)]
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "131072"


def test_a_refused_value_is_reported(fake_glibc):
    fake_glibc.code = 0
    assert keep_freed_memory() is False


def test_elsewhere_than_glibc_nothing_changes(monkeypatch):
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(allocator, "is_glibc", lambda: False)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: pytest.fail("no C library call off glibc"))
    assert keep_freed_memory() is False
    assert not any(variable in os.environ for variable in VARIABLES)


@pytest.mark.skipif(not allocator.is_glibc(), reason="glibc only")
def test_the_real_glibc_takes_the_values_and_a_child_inherits_them(monkeypatch):
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    assert keep_freed_memory() is True
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ['MALLOC_MMAP_THRESHOLD_'])"],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == str(MMAP_THRESHOLD_BYTES)


def test_the_cli_and_the_runner_set_it_before_any_work(monkeypatch, tmp_path):
    import recsec_lib.cli as cli
    from recsec_lib.study import runner

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append("cli"))
    monkeypatch.setattr(runner, "keep_freed_memory", lambda: calls.append("runner"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--lr", "0", "--device", "cpu"]) == 2  # refused before any work, after the call
    assert runner.main(["--jobs", "0"]) == 2  # a refused option: before it
    assert runner.main(["--workers", "4096"]) == 2  # refused after it
    assert calls == ["cli", "runner"]
