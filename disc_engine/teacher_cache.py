"""The frozen teacher's logits kept across epochs, so that later epochs run no teacher forward.

With the paper's prefixes the teacher of split ``i`` reads sentences ``0 … i`` of a fixed
document, so its logits at split ``i``'s positions never change during a run. The split points
are drawn from the run's seeded RNG alone, so the trainer can draw them ahead for every
remaining epoch (``plan_disc_splits``, the same draws the training loop will make) and the one
teacher forward a document gets in its first epoch computes, besides the splits it trains now,
those of its later epochs. Each entry is freed after its last planned use.

Exact: a cached entry is the very tensor an uncached step would compute (up to the rounding of
reading a longer or shorter prefix, far below 1e-5 of the loss). Bounded: entries are kept only
while the total stays under ``max_bytes``; a split that did not fit is computed again when it is
drawn. Full logits cost ``vocabulary × 4`` bytes a position (196 KB for SmolLM2), so the default
``teacher_cache_mb`` (2 GiB) holds about 10,000 positions: a few dozen documents of a few
hundred tokens.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence


def plan_disc_splits(documents: Sequence, order_of_epoch: Callable[[int], list[int]], start: int, total: int,
                     num_splits, rng_state) -> dict[int, Counter]:
    """How many times each (document, split index) will be drawn from ``start`` to ``total``:
    the training loop's own draws, made ahead on a copy of its RNG. Keys are document indices."""
    from disc_engine.splitting import choose_split_indices

    rng = random.Random()
    rng.setstate(rng_state)
    count = len(documents)
    plan: dict[int, Counter] = {}
    for position in range(start, total):
        index = order_of_epoch(position // count)[position % count]
        drawn = choose_split_indices(documents[index].sentence_ids, num_splits, rng)
        plan.setdefault(index, Counter()).update(drawn)
    return plan


class TeacherLogitCache:
    """Teacher logits per (document, split index) for one run, with each split's uses left."""

    def __init__(self, plan: dict[int, Counter], max_bytes: int):
        self.remaining = plan   # document index -> split index -> planned uses not yet made
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: dict[tuple[int, int], object] = {}

    def document(self, index: int) -> DocumentTeacherLogits:
        return DocumentTeacherLogits(self, index)

    def _put(self, key: tuple[int, int], logits, in_use_now: bool) -> None:
        size = logits.numel() * logits.element_size()
        later_uses = self.remaining.get(key[0], {}).get(key[1], 0) - (1 if in_use_now else 0)
        if key in self._entries or later_uses <= 0 or self.bytes + size > self.max_bytes:
            return  # not needed again, or no room: recomputed if drawn again
        self._entries[key] = logits.detach().clone()  # its own storage, not a view of the whole forward
        self.bytes += size

    def _use(self, key: tuple[int, int]) -> None:
        uses = self.remaining.setdefault(key[0], Counter())
        uses[key[1]] -= 1
        if uses[key[1]] <= 0 and key in self._entries:
            entry = self._entries.pop(key)
            self.bytes -= entry.numel() * entry.element_size()


class DocumentTeacherLogits:
    """One document's view of the cache, what ``disc_loss`` reads and fills."""

    def __init__(self, cache: TeacherLogitCache, index: int):
        self.cache = cache
        self.index = index

    def get(self, split: int):
        return self.cache._entries.get((self.index, split))

    def upcoming(self) -> list[int]:
        """Split indices this document will be trained on later and are not cached yet."""
        return sorted(split for split, uses in self.cache.remaining.get(self.index, {}).items()
                      if uses > 0 and (self.index, split) not in self.cache._entries)

    def put(self, split: int, logits, *, in_use_now: bool) -> None:
        self.cache._put((self.index, split), logits, in_use_now)

    def used(self, splits: Sequence[int]) -> None:
        for split in splits:
            self.cache._use((self.index, split))
