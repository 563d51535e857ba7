"""Episodes out to the tools people already use: a BALROG-style per-step JSONL log, and ttyrec
recordings of NetHack and MiniHack episodes.

The ttyrec is NetHack's own terminal output, recorded by NLE while the episode is re-simulated
from its seed and actions (``verify``): nothing is redrawn by us, and a replay that differs from
the record is refused rather than exported. NLE records its format 3 (output, key input and
reward channels); the default here is the classic ttyrec every player reads (output only).
"""

from __future__ import annotations

import bz2
import json
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from automem.runs.verify import Verification, VerifyError, resimulate
from automem.store.db import Store

#: seconds between two key presses in an exported ttyrec: the replay runs in milliseconds, and its
#: own clock would make a player show the whole game at once
KEY_SECONDS = 0.25

_HEADER_3 = struct.Struct("<iiiB")  # sec, usec, length, channel (0 output, 1 input, 2 reward)
_HEADER_1 = struct.Struct("<iii")
_CLOSING = b"\x1b[0m"


def jsonl_records(store: Store, episode_id: int) -> Iterator[dict[str, Any]]:
    """One record per step, BALROG's fields first (step, action, reasoning, observation, reward,
    done), then automem's: who chose the action, progression and achievements after it, the
    memory operations of the step."""
    calls: dict[int, list[str]] = {}
    for call in store.calls_of(episode_id):
        calls.setdefault(int(call["step"]), []).append(f"{call['phase']}: {call['response']}")
    ops: dict[int, list[dict[str, Any]]] = {}
    for op in store.memory_ops_of(episode_id):
        ops.setdefault(int(op["step"]), []).append(
            {"source": op["source"], "verb": op["verb"], "path": op["path"], "ok": bool(op["ok"])}
        )
    for row in store.steps(episode_id):
        step = int(row["step"])
        yield {
            "step": step,
            "action": row["action"],
            "reasoning": "\n".join(calls.get(step, [])),
            "observation": row["observation"],
            "reward": row["reward"],
            "done": bool(row["done"]),
            "action_source": row["action_source"],
            "progression": row["progression"],
            "achievements": json.loads(row["achievements"] or "[]"),
            "memory_ops": ops.get(step, []),
        }


def write_jsonl(store: Store, episode_id: int, path: str | Path) -> int:
    """Write the episode's steps as JSON lines; returns how many."""
    if not store.has_episode(episode_id):
        raise VerifyError(f"no episode {episode_id} in {store.path}")
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        for record in jsonl_records(store, episode_id):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


@dataclass
class TtyrecExport:
    path: Path
    frames: int
    version: int
    verification: Verification


def write_ttyrec(store: Store, episode_id: int, path: str | Path, *, version: int = 1) -> TtyrecExport:
    """Re-simulate a NetHack or MiniHack episode with NLE recording, then write its ttyrec
    (bz2-compressed when ``path`` ends in .bz2). ``version`` 1: the classic format, output only;
    3: NLE's own, with the key presses and rewards."""
    if version not in (1, 3):
        raise VerifyError("a ttyrec is written in version 1 (classic) or 3 (NLE's)")
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="automem-ttyrec-") as tmp:
        savedir = Path(tmp) / "nle"  # NLE creates it and refuses one that exists
        verification = resimulate(store, episode_id, ttyrec_dir=str(savedir))
        if not verification.ok:
            raise VerifyError(f"the replay is not the recorded episode, so its ttyrec would not be: "
                              f"{verification.describe()}")  # fmt: skip
        recordings = sorted(savedir.glob("*.ttyrec3.bz2"), key=lambda p: p.stat().st_size)
        if not recordings:
            raise VerifyError(f"NLE recorded no ttyrec in {savedir}")
        data = bz2.decompress(recordings[-1].read_bytes())
    opener = bz2.open if path.suffix == ".bz2" else open
    with opener(path, "wb") as out:
        frames = _rewrite(data, out, version)  # type: ignore[arg-type]
    return TtyrecExport(path, frames, version, verification)


def _rewrite(data: bytes, out: IO[bytes], version: int) -> int:
    """Copy NLE's format-3 frames to ``out`` with a key-paced clock, in ``version``'s format;
    returns the frames written."""
    offset = frames = keys = 0
    while offset < len(data):
        _, _, length, channel = _HEADER_3.unpack_from(data, offset)
        offset += _HEADER_3.size
        payload = data[offset : offset + length]
        offset += length
        if channel == 1:
            keys += 1
        if version == 1 and channel != 0:
            continue
        sec, usec = divmod(round(keys * KEY_SECONDS * 1_000_000), 1_000_000)
        if version == 1:
            out.write(_HEADER_1.pack(sec, usec, length))
        else:
            out.write(_HEADER_3.pack(sec, usec, length, channel))
        out.write(payload)
        frames += 1
    # a closing frame that draws nothing (reset the colours): readers that show a frame's screen
    # when the next frame starts, NLE's converter among them, would otherwise never show the last
    sec, usec = divmod(round((keys + 1) * KEY_SECONDS * 1_000_000), 1_000_000)
    out.write(_HEADER_1.pack(sec, usec, len(_CLOSING)) if version == 1 else _HEADER_3.pack(sec, usec, len(_CLOSING), 0))
    out.write(_CLOSING)
    return frames + 1
