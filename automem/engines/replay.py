"""An engine that answers with the responses an episode recorded, in order.

``replay:EPISODE_ID`` (option ``db``: the store file; default $AUTOMEM_DB). Played on the same game,
seed and structure, it reproduces the episode without a model: a regression check of the harness
(does the same output still parse, act and write the same way?) and a deterministic source for the
TUI's snapshot tests. Calls beyond the recording fail with EngineError.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from automem.engines.base import Completion, EngineError, Message


class ReplayEngine:
    name = "replay"
    supports_grammar = False  # the recorded text is returned whatever the constraint

    def __init__(self, db: str | Path, episode_id: int) -> None:
        try:
            conn = sqlite3.connect(f"file:{Path(db).expanduser()}?mode=ro", uri=True)
            try:
                rows = conn.execute(
                    "SELECT response, input_tokens, cached_tokens, output_tokens, latency_s, finish_reason, model "
                    "FROM llm_calls WHERE episode_id = ? ORDER BY id",
                    [episode_id],
                ).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise EngineError(f"cannot read recorded calls from {db}: {exc}") from None
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


def factory(target: str, **options: object) -> ReplayEngine:
    from automem.store.db import default_db_path

    try:
        episode_id = int(target)
    except ValueError:
        raise EngineError(f"replay needs an episode id: replay:ID, not {target!r}") from None
    db = options.get("db") or default_db_path()
    return ReplayEngine(db, episode_id)  # type: ignore[arg-type]
