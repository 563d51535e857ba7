"""Episodes on seeds, recorded to the store."""

from automem.runs.episode import EpisodeRunner, EpisodeSummary, StepEvent
from automem.runs.run import RunConfig, execute_run
from automem.runs.seeds import SeedError, parse_seeds

__all__ = ["EpisodeRunner", "EpisodeSummary", "RunConfig", "SeedError", "StepEvent", "execute_run", "parse_seeds"]
