"""Learn: a quiz with explanations, a searchable glossary and flashcards (content in bnviz/science/learning_aids.py)."""

import streamlit as st

from bnviz.science import learning_aids as learn
from bnviz.ui.page import page_header, tab_heading

page_header("Learn: quiz, glossary, flashcards", """
Check what you understood. Every quiz answer comes with an explanation; the glossary and the flashcards use the
same definitions as the rest of the app (PyTorch's conventions).
""")
for name, value in (("learn_checked", {}), ("learn_card_pos", 0), ("learn_card_back", False)):
    if name not in st.session_state:
        st.session_state[name] = value


def check(key: str) -> None:
    st.session_state.learn_checked[key] = st.session_state[f"learn_q_{key}"]


def forget(key: str) -> None:
    st.session_state.learn_checked.pop(key, None)  # a new choice needs a new check


def reset_quiz() -> None:
    st.session_state.learn_checked.clear()
    for q in learn.QUESTIONS:
        st.session_state[f"learn_q_{q.key}"] = None


def move_card(step: int, n: int, to: int | None = None) -> None:
    st.session_state.learn_card_pos = (st.session_state.learn_card_pos + step) % n if to is None else to
    st.session_state.learn_card_back = False


def show_back() -> None:
    st.session_state.learn_card_back = not st.session_state.learn_card_back  # the button toggles: Show / Hide


for q in learn.QUESTIONS:  # a check counts only while its choice is still selected
    if st.session_state.learn_checked.get(q.key) is not None:
        if st.session_state.get(f"learn_q_{q.key}") != st.session_state.learn_checked[q.key]:
            forget(q.key)

quiz, glossary, cards = st.tabs(["Quiz", "Glossary", "Flashcards"])
with quiz:
    tab_heading("Quiz")
    checked = st.session_state.learn_checked
    correct, answered = learn.score(learn.QUESTIONS, checked)
    s, t, r = st.columns([2, 3, 1], vertical_alignment="bottom")
    s.markdown(f"### Score: {correct} / {answered} checked ({len(learn.QUESTIONS)} questions)")
    topic = t.radio("Topic", ("all", *learn.TOPICS), horizontal=True, key="learn_topic", persist_state="session")
    r.button("Start over", key="learn_reset", on_click=reset_quiz)
    for number, q in enumerate(learn.QUESTIONS, 1):
        if topic not in ("all", q.topic):
            continue
        with st.container(border=True):
            st.markdown(f"#### {number}. {q.prompt}")
            choice = st.radio(q.prompt, range(len(q.options)), index=None, format_func=q.options.__getitem__,
                              key=f"learn_q_{q.key}", label_visibility="collapsed", persist_state="session",
                              on_change=forget, args=(q.key,))
            st.button("Check", key=f"learn_check_{q.key}", on_click=check, args=(q.key,))
            if q.key in checked and checked[q.key] is None:
                st.warning("Pick an answer first.")
            elif q.key in checked and learn.check_answer(q, choice):
                st.success(f"**Correct.** {q.explanation}", icon=":material/check_circle:")
            elif q.key in checked:
                st.error(f"**Not quite.** The answer is: *{q.options[q.answer]}*. {q.explanation}",
                         icon=":material/cancel:")
with glossary:
    tab_heading("Glossary")
    query = st.text_input("Search the glossary", key="learn_glossary_q", placeholder="e.g. running, eval, ε",
                          persist_state="session")
    hits = learn.search_glossary(query)
    st.caption(f"{len(hits)} of {len(learn.GLOSSARY)} terms")
    for term in hits:
        symbol = f" ({term.symbol})" if term.symbol else ""
        st.markdown(f"**{term.term}**{symbol}: {term.definition}")
    if not hits:
        st.info("No term matches. Try a shorter word.")
with cards:
    tab_heading("Flashcards")
    n = len(learn.FLASHCARDS)
    seed = st.columns(4)[0].number_input("Shuffle seed (same seed, same order)", 0, 10_000, 0, key="learn_card_seed",
                                         on_change=move_card, args=(0, n, 0), persist_state="session")
    pos = st.session_state.learn_card_pos % n
    card = learn.FLASHCARDS[learn.card_order(n, int(seed))[pos]]
    st.progress((pos + 1) / n, text=f"Card {pos + 1} of {n}")
    with st.container(border=True):
        st.subheader(card.front, anchor=False)
        if st.session_state.learn_card_back:
            st.subheader(f":blue[→ {card.back}]", anchor=False)
        else:
            st.caption("Answer in your head, then press **Show answer**.")
    a, b, c = st.columns(3)
    a.button("← Previous card", key="learn_card_prev", on_click=move_card, args=(-1, n), width="stretch")
    b.button("Hide answer" if st.session_state.learn_card_back else "Show answer", key="learn_card_show",
             on_click=show_back, width="stretch", type="primary")
    c.button("Next card →", key="learn_card_next", on_click=move_card, args=(1, n), width="stretch")
