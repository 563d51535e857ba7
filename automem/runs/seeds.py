"""Seed lists as users write them: ``42``, ``42-51``, ``1,3,10-12``."""

from __future__ import annotations

from automem.errors import AutomemError

MAX_SEED = 2**31 - 1


class SeedError(AutomemError, ValueError):
    pass


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            raise SeedError(f"bad seed list {text!r}: empty item")
        lo, sep, hi = part.partition("-")
        try:
            first = int(lo)
            last = int(hi) if sep else first
        except ValueError:
            raise SeedError(f"bad seed {part!r}: seeds are whole numbers like 42 or 42-51") from None
        if first < 0 or last > MAX_SEED or last < first:
            raise SeedError(f"bad seed range {part!r}: need 0 <= first <= last <= {MAX_SEED}")
        if last - first >= 100_000:
            raise SeedError(f"seed range {part!r} is too long")
        seeds.extend(range(first, last + 1))
    return list(dict.fromkeys(seeds))


def format_seeds(seeds: list[int]) -> str:
    """The inverse of ``parse_seeds``: consecutive seeds as a range (``[1, 3, 10, 11, 12]`` -> ``"1, 3, 10-12"``)."""
    spans: list[list[int]] = []
    for seed in sorted(set(seeds)):
        if spans and seed == spans[-1][1] + 1:
            spans[-1][1] = seed
        else:
            spans.append([seed, seed])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
