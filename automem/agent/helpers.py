"""Built-in observation helpers a Structure switches on; each adds short notes for the model."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Protocol


class Helper(Protocol):
    name: str

    def notes(self, observation: str, last_action: str | None, last_reward: float) -> list[str]: ...


class UnchangedObservation:
    """Warns when the last action left the observation exactly as it was (a wall, a no-op)."""

    name = "unchanged_observation"

    def __init__(self) -> None:
        self._previous: str | None = None

    def notes(self, observation: str, last_action: str | None, last_reward: float) -> list[str]:
        out = []
        if last_action is not None and observation == self._previous:
            out.append(f"Your last action ({last_action}) changed nothing. Try a different action.")
        self._previous = observation
        return out


class StuckDetector:
    """Flags a loop: few distinct observations over a window of steps without any reward."""

    name = "stuck_detector"

    def __init__(self, window: int = 6, max_distinct: int = 2) -> None:
        self.window = max(2, int(window))
        self.max_distinct = max(1, int(max_distinct))
        self._seen: deque[int] = deque(maxlen=self.window)
        self._actions: deque[str] = deque(maxlen=self.window)
        self._rewards: deque[float] = deque(maxlen=self.window)

    def notes(self, observation: str, last_action: str | None, last_reward: float) -> list[str]:
        # hashing keeps the window cheap even for 2,000-character NetHack screens
        self._seen.append(hash(observation))
        if last_action is not None:
            self._actions.append(last_action)
            self._rewards.append(last_reward)
        if len(self._seen) < self.window or any(self._rewards):
            return []
        if len(set(self._seen)) <= self.max_distinct or len(set(self._actions)) == 1:
            return [
                f"You seem stuck: the last {self.window} steps went nowhere "
                f"(actions: {', '.join(dict.fromkeys(self._actions))}). Change your plan."
            ]
        return []


def make_helpers(specs: list[tuple[str, Mapping[str, object]]]) -> list[Helper]:
    helpers: list[Helper] = []
    for name, params in specs:
        if name == UnchangedObservation.name:
            helpers.append(UnchangedObservation())
        elif name == StuckDetector.name:
            helpers.append(StuckDetector(**{k: int(v) for k, v in params.items()}))  # type: ignore[arg-type]
    return helpers
