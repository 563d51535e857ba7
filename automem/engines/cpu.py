"""What the CPU can do, read from /proc/cpuinfo: the features llama.cpp's kernels care about.

AMX matters most: llama.cpp's AMX weight repacking (its "extra buffer types") loads the model and
then segfaults at the first inference (ggml-org/llama.cpp issue 20824), so an engine that may hit
that code turns the extra buffer types off where AMX is present.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

#: the feature flags shown by ``automem doctor``, in this order
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")


@dataclass(frozen=True)
class CpuInfo:
    model: str
    cores: int
    flags: frozenset[str]

    @property
    def has_amx(self) -> bool:
        return any(f.startswith("amx") for f in self.flags)

    def summary(self) -> str:
        shown = [f for f in FLAGS if f in self.flags]
        return f"{self.model or platform.machine()}, {self.cores} cores, {' '.join(shown) or 'no AVX2/AVX-512/AMX'}"


def parse_cpuinfo(text: str) -> CpuInfo:
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:  # x86 says flags, arm64 Features
            flags = set(value.split())
    return CpuInfo(model=model, cores=os.cpu_count() or 1, flags=frozenset(flags))


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    return parse_cpuinfo(text)
