"""The trajectory digest loop 1's critic reads: a run's episodes condensed to what fits its context.

Whole trajectories are thousands of steps, so the critic gets numbers and a few windows instead:
per episode the outcome, progression and achievement timeline, failure counts (invalid outputs,
unchanged observations, streaks without reward, deaths and their cause); per memory file how it
was written, read and how much of the prompt it took (:class:`FileStats`, which the heuristic
critic reads too); and the steps around the failures and the best moments with their LOG and PLAN
turns. A critic engine with tool calls can ask for more: :func:`step_range` and
:func:`memory_file_at`, described for it in :data:`TOOLS` and dispatched by :func:`call_tool`.

The modules: ``readers`` (the store's rows as small tuples), ``files`` (per-file statistics),
``stats`` (episodes, their windows, :func:`build_digest`), ``render`` (the text under a character
budget), ``tools`` (the critic's tools), ``model`` (the dataclasses they fill).
"""

from automem.optimize.digest.model import Digest, DigestError, EpisodeDigest, FileStats, Window
from automem.optimize.digest.readers import StructureInfo, structure_info
from automem.optimize.digest.stats import build_digest
from automem.optimize.digest.tools import TOOLS, MemoryFileAtArgs, StepRangeArgs, call_tool, memory_file_at, step_range

__all__ = [
    "TOOLS",
    "Digest",
    "DigestError",
    "EpisodeDigest",
    "FileStats",
    "MemoryFileAtArgs",
    "StepRangeArgs",
    "StructureInfo",
    "Window",
    "build_digest",
    "call_tool",
    "memory_file_at",
    "step_range",
    "structure_info",
]
