"""The inner loop: prompt assembly, phases, parsing and fallbacks."""

from automem.agent.loop import Agent, AgentError, Decision, TurnEvent

__all__ = ["Agent", "AgentError", "Decision", "TurnEvent"]
