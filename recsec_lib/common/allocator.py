"""Keep freed tensor memory in the process instead of handing it back to the OS after every batch.

Why: a surrogate's training step builds a few tensors of about 24 MB (ML-1M:
16 sequences × 100 prefixes × 3,707 item scores, and the gradient of that
gather). With glibc's default settings, freeing such a block gives its pages
back to the OS (the heap top is trimmed past 128 KB, blocks above the mmap
threshold are unmapped), so the next batch takes a page fault for every 4 KB
of it again: on 2 cores that was a quarter of a surrogate's epoch, in
``aten::fill_`` and the forward product (``benchmarks/bench_allocator.py``
prints the ratio). Raising the mmap threshold to glibc's largest (32 MiB) and
trimming only above 256 MiB keeps those pages mapped and reused. The numbers
are bit-identical: only where the memory comes from changes.

``keep_freed_memory`` sets it for this process (``mallopt``) and, through
glibc's ``MALLOC_*_`` variables, for every process it starts afterwards
(notebook kernels, pool workers); a variable the user set wins. Elsewhere
than glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform

MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc refuses more (half its 64 MiB heap size)
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024  # free memory kept at the heap's top before it is returned
# glibc's variables read at a process's start, its mallopt parameter (malloc.h) and our value.
SETTINGS = (("MALLOC_MMAP_THRESHOLD_", -3, MMAP_THRESHOLD_BYTES), ("MALLOC_TRIM_THRESHOLD_", -1, TRIM_THRESHOLD_BYTES))
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_MMAP_MAX, DEFAULT_TRIM_THRESHOLD_BYTES = 65536, 128 * 1024  # glibc's defaults (malloc.c)
LARGE_TRIM_THRESHOLD_BYTES = 2 * 1024 * 1024 * 1024  # a target's training keeps up to this much freed heap


def is_glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def keep_freed_memory() -> bool:
    """Apply the settings above to this process and its future children; True when glibc took them."""
    if not is_glibc():
        return False
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    taken = True
    for variable, parameter, value in SETTINGS:
        if variable in os.environ:  # the user's value: glibc read it when this process started
            continue
        os.environ[variable] = str(value)
        taken &= libc.mallopt(parameter, value) == 1  # mallopt returns 1 on success
    return taken



@contextlib.contextmanager
def large_blocks_kept():
    """While a target with a full softmax trains: blocks above 32 MiB come from the heap too; yields True
    when glibc took it.

    A batch of 128 windows × 200 positions × 3,707 item scores is a 380 MB tensor, and its softmax and
    gradient are as large: glibc maps and unmaps each of them per batch (no threshold can be set that
    high). Inside the block no allocation is mapped on its own (``M_MMAP_MAX`` 0) and up to 2 GiB of
    freed heap is kept; on leaving, glibc's mapping comes back and the kept heap is returned
    (``malloc_trim``), so a process that goes on (a test session, a notebook) does not hold it.
    """
    if not is_glibc():
        yield False
        return
    libc = ctypes.CDLL(None)
    taken = (libc.mallopt(M_MMAP_MAX, 0) == 1) & (libc.mallopt(M_TRIM_THRESHOLD, LARGE_TRIM_THRESHOLD_BYTES) == 1)
    try:
        yield taken
    finally:
        trim = os.environ.get("MALLOC_TRIM_THRESHOLD_", "")
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, int(trim) if trim.isdigit() else DEFAULT_TRIM_THRESHOLD_BYTES)
        libc.malloc_trim(0)


__all__ = ("LARGE_TRIM_THRESHOLD_BYTES", "SETTINGS", "MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "is_glibc",
           "keep_freed_memory", "large_blocks_kept")
