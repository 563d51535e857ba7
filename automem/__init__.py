"""automem: LLM agents that learn to manage memory as a skill while playing long-horizon games."""

__version__ = "0.1.0"
