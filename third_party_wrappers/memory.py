"""Returning freed heap memory to the operating system (glibc's malloc_trim), where the C library has it.

A long render frees and reallocates many mid-sized temporaries; glibc keeps the freed pages in its arenas, so the
resident size creeps up with the video's length although nothing is held. Trimming at segment ends keeps it flat.
"""
import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _trim():
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


def release_free_memory() -> None:
    """Hand the heap's free pages back to the OS (a no-op without glibc)."""
    trim = _trim()
    if trim is not None:
        trim(0)
