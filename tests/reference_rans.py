"""Independent reference decoder for c2f's entropy-coded data (no constriction).

The coder is a stack-based rANS with 32-bit words, a 64-bit state and 24-bit probability
precision. The bytes are a sequence of little-endian 32-bit words; the decoder consumes them
from the *end* of the sequence towards the start:

* initial state: empty data gives state 0; otherwise the last word (which must be nonzero)
  is the high half of the state and, if any word precedes it, that word is the low half;
* each symbol is found from the low 24 bits of the state ("slot"), the state is advanced by
  ``(state >> 24) * freq + slot - cum`` and, if it then lies below 2**32 and words remain,
  the next word (moving towards the start) is shifted in from the right;
* when no words remain, decoding continues without refilling (deterministic, never an error).

This module exists to show that the bitstream specification fully describes the coder.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from itertools import accumulate
from typing import SupportsInt

PRECISION = 24
TOTAL = 1 << PRECISION
SLOT_MASK = TOTAL - 1
WORD_BITS = 32
WORD_MASK = (1 << WORD_BITS) - 1
REFILL_BELOW = 1 << WORD_BITS  # state lower bound kept while words remain


class RansReader:
    """Decode symbols, one at a time, from the raw little-endian words of one coded unit."""

    def __init__(self, words: bytes) -> None:
        if len(words) % 4:
            raise ValueError("coded data is not a whole number of 32-bit words")
        self._words = [int.from_bytes(words[i : i + 4], "little") for i in range(0, len(words), 4)]
        self._next = len(self._words)  # words[_next - 1] is read next; 0 means exhausted
        self.state = 0
        if self._next:
            top = self._take()
            if top == 0:
                raise ValueError("coded data must not end in a zero word")
            self.state = top
            if self._next:
                self.state = (self.state << WORD_BITS) | self._take()

    def _take(self) -> int:
        self._next -= 1
        return self._words[self._next]

    @property
    def words_left(self) -> int:
        """Number of words not yet shifted into the state."""
        return self._next

    def is_finished(self) -> bool:
        """True when every word was consumed and the state is back to the encoder's start (0)."""
        return self._next == 0 and self.state == 0

    def _advance(self, slot: int, cum: int, freq: int) -> None:
        self.state = (self.state >> PRECISION) * freq + (slot - cum)
        if self.state < REFILL_BELOW and self._next:
            self.state = (self.state << WORD_BITS) | self._take()

    def decode_table(self, freq: Iterable[SupportsInt]) -> int:
        """Decode one symbol with integer frequencies ``freq`` (each >= 1, summing to 2**24).

        Symbol i owns the slots ``[cum[i], cum[i] + freq[i])`` where ``cum[i]`` is the sum
        of the frequencies before it; the returned value is that index i.
        """
        freqs = [int(f) for f in freq]
        if len(freqs) < 2 or min(freqs) < 1 or sum(freqs) != TOTAL:
            raise ValueError("a table needs >= 2 entries, each >= 1, summing to 2**24")
        starts = [0, *accumulate(freqs[:-1])]
        slot = self.state & SLOT_MASK
        symbol = bisect_right(starts, slot) - 1
        self._advance(slot, starts[symbol], freqs[symbol])
        return symbol

    def decode_uniform(self, n: int) -> int:
        """Decode one symbol of the uniform model over ``0..n-1`` (2 <= n <= 2**24).

        Every symbol but the last has frequency ``w = 2**24 // n`` and starts at ``k * w``;
        the last symbol, ``n - 1``, takes all remaining slots, ``2**24 - (n - 1) * w``.
        """
        if not 2 <= n <= TOTAL:
            raise ValueError("uniform alphabet size must lie in 2..2**24")
        width = TOTAL // n
        slot = self.state & SLOT_MASK
        symbol = min(slot // width, n - 1)
        cum = symbol * width
        size = width if symbol < n - 1 else TOTAL - cum
        self._advance(slot, cum, size)
        return symbol
