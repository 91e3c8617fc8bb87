"""The shapes of the learning aids: a quiz question, a glossary term, a flashcard (plain frozen data)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Question:
    """One multiple-choice question; `answer` is the index of the one correct option."""

    key: str  # stable id, used in widget keys and in the score
    topic: str  # one of TOPICS
    prompt: str
    options: tuple[str, ...]
    answer: int
    explanation: str  # shown after answering, right or wrong


@dataclasses.dataclass(frozen=True)
class Term:
    """A glossary entry."""

    term: str
    definition: str
    symbol: str = ""  # e.g. "γ, β"


@dataclasses.dataclass(frozen=True)
class Card:
    """A flashcard: a question or cue on the front, the answer on the back."""

    front: str
    back: str
