"""The inner loop: prompt assembly, phases, parsing and fallbacks."""

from automem.agent.loop import Agent, AgentError, StepChoice, TurnEvent

__all__ = ["Agent", "AgentError", "StepChoice", "TurnEvent"]
