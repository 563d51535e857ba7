"""An engine that answers with the responses an episode recorded, in order.

``replay:EPISODE_ID`` (option ``db``: the store file; default $AUTOMEM_DB). Played on the same game,
seed and structure, it reproduces the episode without a model: a regression check of the harness
(does the same output still parse, act and write the same way?) and a deterministic source for the
TUI's snapshot tests. Calls beyond the recording fail with EngineError.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from automem.engines.base import Completion, EngineError, Message
from automem.engines.options import EngineOptions, takes_options


class ReplayEngine:
    name = "replay"
    supports_grammar = False  # the recorded text is returned whatever the constraint

    def __init__(self, db: str | Path, episode_id: int) -> None:
        # imported here: an engine module stays light, and only this engine reads the store
        from automem.store.db import StoreError
        from automem.store.trajectories import recorded_calls

        try:
            rows = recorded_calls(db, episode_id)
        except StoreError as exc:
            raise EngineError(str(exc)) from None
        if not rows:
            raise EngineError(f"episode {episode_id} in {db} recorded no model calls")
        self.model = f"replay of episode {episode_id} ({rows[0][6]})"
        self._rows = rows
        self._next = 0

    def complete(
        self,
        messages: list[Message],
        *,
        grammar: str | None = None,
        max_tokens: int = 64,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> Completion:
        if self._next >= len(self._rows):
            raise EngineError(f"the recording has only {len(self._rows)} calls")
        text, inp, cached, out, latency, finish, _ = self._rows[self._next]
        self._next += 1
        return Completion(text, inp, cached, out, latency, finish)

    def close(self) -> None:
        pass


class ReplayOptions(EngineOptions):
    db: Path | None = Field(None, description="the store file holding the episode (default $AUTOMEM_DB)")


@takes_options(ReplayOptions, "replay")
def factory(target: str, **options: object) -> ReplayEngine:
    from automem.store.db import default_db_path

    try:
        episode_id = int(target)
    except ValueError:
        raise EngineError(f"replay needs an episode id: replay:ID, not {target!r}") from None
    db = options.get("db") or default_db_path()
    return ReplayEngine(db, episode_id)  # type: ignore[arg-type]
