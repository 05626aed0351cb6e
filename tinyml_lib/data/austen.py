"""Jane Austen's six novels (public domain), split per novel into train / validation / held-out test text.

Each novel's first 90% of characters is training text, the next 5% validation, the last 5% the held-out test text
used for perplexity. Tokenizations: characters (`CharTokenizer`) and byte-level BPE trained on the training text with
the `tokenizers` library (`train_bpe`).
"""
from __future__ import annotations

import functools

import numpy as np

from tinyml_lib.data.splits import SPLITS
from tinyml_lib.data.manifest import verified_path

NOVELS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")
FRACTIONS = (0.90, 0.05)


@functools.cache
def load_novel(name: str) -> str:
    """Full text of one novel (UTF-8)."""
    if name not in NOVELS:
        raise ValueError(f"name: expected one of {NOVELS}, got {name!r}")
    return verified_path(f"austen/{name}.txt").read_text(encoding="utf-8")


def austen_text(split: str, novels: tuple[str, ...] = NOVELS) -> str:
    """The `split` part of each novel in `novels`, joined by blank lines.

    Args:
        split: "train", "val" or "test" (held out).
        novels: which novels, in this order.
    Returns:
        str.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    parts = []
    for name in novels:
        text = load_novel(name)
        a, b = int(len(text) * FRACTIONS[0]), int(len(text) * sum(FRACTIONS))
        parts.append({"train": text[:a], "val": text[a:b], "test": text[b:]}[split])
    return "\n\n".join(parts)


class CharTokenizer:
    """Character-level tokenizer over the characters of all six novels (ids sorted by character)."""

    def __init__(self, alphabet: str | None = None):
        alphabet = alphabet or "".join(sorted(set("".join(load_novel(n) for n in NOVELS))))
        self.chars = alphabet
        self.index = {c: i for i, c in enumerate(alphabet)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """(len(text),) int64 ids; a character outside the alphabet raises ValueError naming it."""
        try:
            return np.fromiter((self.index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in the Austen alphabet") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


@functools.cache
def train_bpe(vocab_size: int = 4096):
    """A byte-level BPE tokenizer (`tokenizers.ByteLevelBPETokenizer`) trained on the training text; ~1-2 s."""
    from tokenizers import ByteLevelBPETokenizer
    if vocab_size < 256 + 1:
        raise ValueError(f"vocab_size: expected more than the 256 byte tokens, got {vocab_size}")
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator([austen_text("train")], vocab_size=vocab_size, min_frequency=2, show_progress=False)
    return tok
