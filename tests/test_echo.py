"""The echo guard: what a participant was sent, coming back through their microphone."""

from __future__ import annotations

import pytest

from callserver.pipeline.echo import EchoGuard, words

DUB = "No fue un enfermo-hombre joven colocado."


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock | None = None) -> EchoGuard:
    return EchoGuard(window_s=20.0, threshold=0.65, clock=clock or Clock())


def test_words_fold_case_and_accents() -> None:
    assert words("Enfermón, ¿QUÉ?") == ["enfermon", "que"]


@pytest.mark.parametrize(
    "heard",
    [
        DUB,
        "no fue un enfermo hombre joven colocado",
        # What Whisper made of this dub played back through a caller's loudspeaker:
        "No fue en enfermón picóico locado.",
        "No fue en enfermo rombo colinco locado.",
        "No fue en enfermo hombro colinco locado.",
    ],
)
def test_echo_of_a_dub_is_recognised(heard: str) -> None:
    g = guard()
    g.sent(DUB)
    assert g.is_echo(heard)


@pytest.mark.parametrize(
    "reply",
    [
        "No, fue un error mío",
        "Sí, claro, mañana hablamos del informe",
        "Estoy de acuerdo con todo",
        "no",
    ],
)
def test_a_real_reply_is_not_echo(reply: str) -> None:
    g = guard()
    g.sent(DUB)
    assert not g.is_echo(reply)


def test_nothing_sent_means_no_echo() -> None:
    assert not guard().is_echo(DUB)


def test_sent_text_is_forgotten_after_the_window() -> None:
    clock = Clock()
    g = guard(clock)
    g.sent(DUB)
    clock.now += 19
    assert g.is_echo(DUB)
    clock.now += 2
    assert not g.is_echo(DUB)
    assert g.idle


def test_short_utterances_are_echo_only_of_short_texts() -> None:
    g = guard()
    g.sent("Yes, I think we should start the meeting now.")
    assert not g.is_echo("yes please")
    assert not g.is_echo("the meeting")
    g.sent("Thank you.")
    assert g.is_echo("thank you")
