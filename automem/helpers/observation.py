"""Helpers that read only the text observation, so they work for any game."""

from __future__ import annotations

from collections import deque

from pydantic import Field

from automem.helpers.base import Helper, HelperContext, HelperParams


class UnchangedObservation(Helper):
    """Warns when the last action left the observation exactly as it was (a wall, a no-op)."""

    name = "unchanged_observation"
    description = "a note when the last action changed nothing in the observation (walked into a wall, a no-op)"

    def __init__(self, params: HelperParams | None = None) -> None:
        super().__init__(params)
        self._previous: str | None = None

    def step(self, ctx: HelperContext) -> list[str]:
        out = []
        if ctx.last_action is not None and ctx.observation == self._previous:
            out.append(f"Your last action ({ctx.last_action}) changed nothing. Try a different action.")
        self._previous = ctx.observation
        return out


class StuckParams(HelperParams):
    window: int = Field(default=6, ge=2, le=50, description="steps looked back")
    max_distinct: int = Field(default=2, ge=1, le=50, description="at most this many distinct observations is a loop")


class StuckDetector(Helper):
    """Flags a loop: few distinct observations over a window of steps without any reward."""

    name = "stuck_detector"
    description = "a note when the last `window` steps earned nothing and showed at most `max_distinct` observations"
    Params = StuckParams
    params: StuckParams

    def __init__(self, params: StuckParams | None = None) -> None:
        super().__init__(params)
        p = self.params
        self.window, self.max_distinct = p.window, p.max_distinct
        self._seen: deque[int] = deque(maxlen=self.window)
        self._actions: deque[str] = deque(maxlen=self.window)
        self._rewards: deque[float] = deque(maxlen=self.window)

    def step(self, ctx: HelperContext) -> list[str]:
        # hashing keeps the window cheap even for 2,000-character NetHack screens
        self._seen.append(hash(ctx.observation))
        if ctx.last_action is not None:
            self._actions.append(ctx.last_action)
            self._rewards.append(ctx.last_reward)
        # a penalty (MiniHack's -0.01 for bumping into stone) is no progress: only a gain breaks the loop
        if len(self._seen) < self.window or any(r > 0 for r in self._rewards):
            return []
        if len(set(self._seen)) <= self.max_distinct or len(set(self._actions)) == 1:
            return [
                f"You seem stuck: the last {self.window} steps went nowhere "
                f"(actions: {', '.join(dict.fromkeys(self._actions))}). Change your plan."
            ]
        return []
