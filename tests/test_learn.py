"""Tests for bnviz.science.learning_aids (quiz, glossary and flashcards as data) and for the Learn page."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bnviz.science import learning_aids as learn
from bnviz.science.learning_aids import GLOSSARY, QUESTIONS, Card, Question, Term

PAGES_DIR = Path(__file__).resolve().parents[1] / "pages"

PAGE = str(PAGES_DIR / "learn.py")


def test_content_validates():
    assert learn.validate() == []


def test_enough_questions_on_every_topic():
    assert len(QUESTIONS) >= 15
    for topic in learn.TOPICS:
        assert sum(q.topic == topic for q in QUESTIONS) >= 4, topic


def test_quiz_covers_the_required_subjects():
    # maths, the experiments and the misconceptions named in the brief, one question key each
    required = {"biased_var", "running_var_unbiased", "eps_place", "gamma_beta", "momentum_convention",
                "eval_mode", "scale_invariance", "ioffe_fig1", "noisy_bn", "ics_measure", "wu_he_batch",
                "higher_lr", "after_activation", "std_m_minus_1", "layer_norm", "ics_proven", "unsourced_claims"}
    assert required <= {q.key for q in QUESTIONS}


def test_key_facts_in_the_correct_answers():
    by_key = {q.key: q for q in QUESTIONS}

    def right(key):
        return by_key[key].options[by_key[key].answer]

    assert "/ m" in right("biased_var")
    assert "m/(m − 1)" in right("running_var_unbiased")
    assert "√(σ² + ε)" in right("eps_place")
    assert "0.9 · running + 0.1 · batch" in right("momentum_convention")
    assert "BN(aWu) = BN(Wu)" in right("scale_invariance")
    assert "23.6%" in right("wu_he_batch") and "34.7%" in right("wu_he_batch")
    assert "N, H and W" in right("conv_axes")


def test_every_question_has_one_correct_option_and_an_explanation():
    for q in QUESTIONS:
        assert isinstance(q.answer, int) and 0 <= q.answer < len(q.options), q.key
        assert [learn.check_answer(q, i) for i in range(len(q.options))].count(True) == 1, q.key
        assert len({o.strip().lower() for o in q.options}) == len(q.options), q.key
        assert len(q.explanation.split()) >= 15, q.key  # says why, not just "correct"


def _learner_texts() -> str:
    cards = [f"{c.front} {c.back}" for c in learn.FLASHCARDS]
    terms = [t.definition for t in GLOSSARY]
    questions = [" ".join((q.prompt, *q.options, q.explanation)) for q in QUESTIONS]
    return " ".join(cards + terms + questions)


def test_no_overclaims_in_the_quiz_glossary_and_flashcards():
    text = _learner_texts().lower()
    for phrase in ("today's", "best-supported", "stay put", "stays put", "beyond doubt", "is what makes bn help",
                   "slightly off"):
        assert phrase not in text, phrase
    by_key = {q.key: q for q in QUESTIONS}
    assert "much more stable" in by_key["ioffe_fig1"].options[by_key["ioffe_fig1"].answer]
    assert "necessary" in by_key["noisy_bn"].explanation
    assert "Santurkar" in by_key["why_bn_helps"].prompt  # whose reading it is
    for other in ("Bjorck", "Kohler", "Arora", "De & Smith", "Yang"):
        assert other in by_key["why_bn_helps"].explanation, other
    assert "this app's own" in by_key["ics_measure"].explanation
    higher_lr = by_key["higher_lr"].explanation
    assert "0.01" in higher_lr and "slow" in higher_lr and "not intolerance" in higher_lr
    assert "fixed statistics" in by_key["gamma_beta"].explanation


def test_the_m_minus_1_factor_in_the_quiz_is_right():
    """The quiz says a 1/(m − 1) standard deviation gives normalized values √((m − 1)/m) times PyTorch's."""
    import torch
    import torch.nn.functional as F

    q = next(q for q in QUESTIONS if q.key == "std_m_minus_1")
    assert "√((m − 1)/m)" in q.options[q.answer] and "1/√2 at m = 2" in q.explanation
    assert "about 0.99 at m = 64" in q.explanation
    for m, stated in ((2, 2 ** -0.5), (64, 0.99)):
        x = torch.randn(m, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(m))
        tutorial = (x - x.mean(0)) / x.std(0, unbiased=True)
        pytorch = F.batch_norm(x, None, None, training=True, eps=1e-12)  # torch refuses eps = 0 in training
        ratio = (tutorial / pytorch).flatten()
        assert torch.allclose(ratio, torch.full_like(ratio, ((m - 1) / m) ** 0.5))
        assert ratio[0].item() == pytest.approx(stated, abs=0.005)


def test_glossary_covers_the_required_terms():
    assert learn.missing_terms() == []
    assert len({t.term.lower() for t in GLOSSARY}) == len(GLOSSARY)
    assert learn.missing_terms(GLOSSARY[:3]) != []


@pytest.mark.parametrize(("change", "problem"), [
    ({"options": ("a", "b")}, "2 options"),
    ({"options": tuple("abcdef")}, "6 options"),
    ({"answer": 4}, "not an index"),
    ({"answer": -1}, "not an index"),
    ({"answer": True}, "not an index"),
    ({"explanation": "  "}, "empty explanation"),
    ({"options": ("a", "b", "A")}, "not unique"),
    ({"topic": "history"}, "topic"),
])
def test_validate_catches_bad_questions(change, problem):
    good = Question("k", "maths", "Which?", ("a", "b", "c"), 0, "Because.")
    assert learn.validate([good], GLOSSARY, ()) == []
    problems = learn.validate([dataclasses.replace(good, **change)], GLOSSARY, ())
    assert any(problem in p for p in problems), problems


def test_validate_catches_duplicates_and_empty_entries():
    q = QUESTIONS[0]
    assert any("more than once" in p for p in learn.validate([q, q], GLOSSARY, ()))
    twice = (*GLOSSARY, Term(GLOSSARY[0].term.upper(), "again"))
    assert any("appears more than once" in p for p in learn.validate(QUESTIONS, twice, ()))
    assert any("flashcard 1" in p for p in learn.validate(QUESTIONS, GLOSSARY, (Card("front", " "),)))


def test_check_answer_and_score():
    for q in QUESTIONS:
        assert learn.check_answer(q, q.answer)
        assert not any(learn.check_answer(q, i) for i in range(len(q.options)) if i != q.answer)
        assert not learn.check_answer(q, None)
    first, second = QUESTIONS[:2]
    choices = {first.key: first.answer, second.key: (second.answer + 1) % len(second.options), "nope": 0}
    assert learn.score(QUESTIONS, choices) == (1, 2)
    assert learn.score(QUESTIONS, {}) == (0, 0)


def test_search_glossary():
    assert learn.search_glossary("") == list(GLOSSARY)
    assert learn.search_glossary("ε")[0].term == "Epsilon"
    assert learn.search_glossary("EVAL MODE")[0].term == "Train vs eval mode"
    assert learn.search_glossary("group")[0].term == "Group normalization"
    assert learn.search_glossary("no such word") == []


def test_card_order_is_a_seeded_shuffle():
    n = len(learn.FLASHCARDS)
    assert n >= 10
    order = learn.card_order(n, 3)
    assert sorted(order) == list(range(n))
    assert order == learn.card_order(n, 3)
    assert order != learn.card_order(n, 4)


# ---- the page ----------------------------------------------------------------------------------------------------


def _texts(elements) -> str:
    return " ".join(e.value for e in elements)


def test_learn_page_quiz_glossary_and_flashcards():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert len([r for r in at.radio if r.key and r.key.startswith("learn_q_")]) == len(QUESTIONS)

    q = QUESTIONS[0]
    at.radio(key=f"learn_q_{q.key}").set_value(q.answer).run()
    assert q.explanation not in _texts(at.success)  # nothing before "Check"
    at.button(key=f"learn_check_{q.key}").click().run()
    assert q.explanation in _texts(at.success)
    assert "Score: 1 / 1" in _texts(at.markdown)

    wrong = (q.answer + 1) % len(q.options)
    at.radio(key=f"learn_q_{q.key}").set_value(wrong).run()
    assert "Score: 0 / 0" in _texts(at.markdown)  # a new choice needs a new check
    at.button(key=f"learn_check_{q.key}").click().run()
    assert q.options[q.answer] in _texts(at.error) and q.explanation in _texts(at.error)
    assert "Score: 0 / 1" in _texts(at.markdown)

    at.text_input(key="learn_glossary_q").input("momentum").run()
    assert "**Momentum**" in _texts(at.markdown)
    assert "**Layer normalization**" not in _texts(at.markdown)

    at.button(key="learn_card_next").click().run()
    at.button(key="learn_card_show").click().run()
    assert not at.exception
    front = learn.FLASHCARDS[learn.card_order(len(learn.FLASHCARDS), 0)[1]]
    assert front.front in _texts(at.subheader) and front.back in _texts(at.subheader)

    at.button(key="learn_reset").click().run()
    assert at.radio(key=f"learn_q_{q.key}").value is None
    assert "Score: 0 / 0" in _texts(at.markdown)
