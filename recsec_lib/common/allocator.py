"""Keep freed tensor memory in the process instead of handing it back to the OS after every batch.

Why: a surrogate's training step builds a few tensors of about 24 MB (ML-1M:
16 sequences × 100 prefixes × 3,707 item scores, and the gradient of that
gather). With glibc's default settings, freeing such a block gives its pages
back to the OS (the heap top is trimmed past 128 KB, blocks above the mmap
threshold are unmapped), so the next batch takes a page fault for every 4 KB
of it again: about a fifth of a surrogate's epoch
(``benchmarks/bench_allocator.py``: 3.27 s per epoch against 2.59 s, one
thread on an idle 2-core machine). Raising the mmap threshold to glibc's
largest (32 MiB) and trimming only above 256 MiB keeps those pages mapped and
reused. The numbers are bit-identical: only where the memory comes from
changes. The whole cpu study was not shorter with it (7,318 s against 7,259 s;
the README says what is known of why), but no figure moved either.

``keep_freed_memory`` sets it for this process (``mallopt``) and, through
glibc's ``MALLOC_*_`` variables, for every process it starts afterwards
(notebook kernels, pool workers); a variable the user set wins. Elsewhere
than glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc refuses more (half its 64 MiB heap size)
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024  # free memory kept at the heap's top before it is returned
# glibc's variables read at a process's start, its mallopt parameter (malloc.h) and our value.
SETTINGS = (("MALLOC_MMAP_THRESHOLD_", -3, MMAP_THRESHOLD_BYTES), ("MALLOC_TRIM_THRESHOLD_", -1, TRIM_THRESHOLD_BYTES))


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


__all__ = ("SETTINGS", "MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "is_glibc", "keep_freed_memory")
