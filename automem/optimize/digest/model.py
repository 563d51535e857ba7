"""The digest as data: what :func:`~automem.optimize.digest.build_digest` returns.

:class:`FileStats` is the one record of a memory file's figures: the digest fills it per episode
and over the run, and the heuristic critic reads the run's figures from :class:`Signals
<automem.optimize.heuristic.Signals>` as they are (no copy into a shape of its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from automem.errors import AutomemError
from automem.optimize.digest.render import render
from automem.runs.memory_metrics import MemoryMetrics


class DigestError(AutomemError, ValueError):
    """The run does not exist."""


@dataclass
class FileStats:
    """One memory file over a run's episodes (or one episode's).

    ``context_share`` approximates the share of prompt characters the file took: while pinned, its
    size at the start of each step counted once per model call of that step, plus the characters
    its successful reads returned (counted once, though a read stays in the step's later turns),
    over the characters of every model call's prompt. Episodes without model calls add nothing.
    ``final_lines``/``final_chars`` are the mean over episodes of the size at the episode's end;
    ``growth_chars_per_step`` is (end size - seed size) summed over episodes / their steps.

    The defaults describe a file nothing is known about (a heuristic test's signals, a file the
    digest never saw): in particular ``never_read`` is False there, so no mutation drops a file on
    no evidence; the digest always sets it.
    """

    path: str
    writes: int = 0  # successful write verbs (append, write, upsert, ...), appends included
    refused_writes: int = 0  # write verbs the folder refused (caps, read-only, bad line, ...)
    reads: int = 0  # successful view/tail/search/count; a search or count over '*' counts for each file it listed
    redundant_writes: int = 0  # the content did not change, or the added lines were already there
    final_lines: int = 0
    final_chars: int = 0
    growth_chars_per_step: float = 0.0
    context_share: float = 0.0
    never_read: bool = False  # never read by a read verb and not pinned (so the agent never saw it)
    pinned: bool = False
    appends: int = 0  # successful writes that were appends (0 from a source without a count: estimated from growth)
    helper_writes: int = 0  # successful writes by the structure's helpers (not in ``writes``)


@dataclass
class Window:
    """Consecutive steps around a failure or a best moment, as digest lines."""

    episode_id: int
    kind: str  # failure | best
    reason: str
    start: int
    end: int
    lines: list[str] = field(default_factory=list)
    priority: int = 0  # lower is more important (a death before a refused operation)
    focus: int = 0  # the step the reason is about: a window cut to fit keeps the steps nearest it


@dataclass
class EpisodeDigest:
    episode_id: int
    task: str
    seed: int
    status: str  # finished | failed | interrupted | running (the last three are unfinished)
    steps: int
    progression: float
    ended_reason: str | None
    error: str | None
    achievements: list[tuple[int, str]] = field(default_factory=list)  # (step that unlocked it, name)
    invalid_outputs: int = 0
    unchanged_observations: int = 0  # steps whose observation equals the previous step's
    longest_zero_reward_streak: int = 0  # longest run of steps without positive reward
    fallback_actions: int = 0
    tokens_per_step: float = 0.0
    memory_ops: int = 0  # the model's and a person's (helpers' are in helper_ops)
    helper_ops: int = 0
    windows: list[Window] = field(default_factory=list)
    zero_reward_streak_start: int = 0
    refused_ops: int = 0
    died: bool = False
    death_cause: str | None = None  # the end reason and the vitals and message last seen before it
    progression_timeline: list[tuple[int, float]] = field(default_factory=list)  # (step, value) on each rise
    log_budget_exhausted: int = 0  # steps whose LOG phase used every turn without DONE
    files: dict[str, FileStats] = field(default_factory=dict)

    @property
    def unfinished(self) -> bool:
        return self.status != "finished"


@dataclass
class Digest:
    run_id: int
    structure_id: str | None
    game: str
    episodes: list[EpisodeDigest]
    files: dict[str, FileStats]  # over the run's episodes
    mean_progression: float  # over finished episodes (all episodes when none finished)
    stderr: float
    tokens_per_step: float
    #: the paper's memory metrics over these episodes (automem.runs.memory_metrics)
    memory: MemoryMetrics = field(default_factory=MemoryMetrics)

    def to_text(self, budget_chars: int = 12000) -> str:
        """A plain-text report that always fits ``budget_chars``: headline numbers, the file
        table, one entry per episode, then windows, most important first, while room is left."""
        return render(self, budget_chars)
