"""Whether the words said before a pause sound like a finished sentence.

The endpointer ends an utterance on silence; how much silence depends on this verdict, given
by the words early recognition found in the utterance so far. A pause after "ask not what your
country can do for" is a pause inside a sentence; one after "Ask what you can do for your
country." is probably its end. Text is all there is to go on (no prosody), so the rules are
few and cautious: what is judged ``UNFINISHED`` only waits longer, within a bound, and a
speaker who really stopped loses that much time, never words.
"""

from __future__ import annotations

import enum
import re
import unicodedata

from models.stt.filters import normalise


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


class Verdict(enum.Enum):
    """What the endpointer is told about a paused utterance's words."""

    #: A whole sentence: end it after the short ``complete_silence_ms``.
    COMPLETE = "complete"
    #: A clause that goes on: end it only after ``unfinished_silence_ms``.
    UNFINISHED = "unfinished"
    #: No words to judge (recognition was busy, failed or heard nothing): ``silence_ms``.
    UNKNOWN = "unknown"
    #: Not a verdict on the words but on what the listener has of them: every word up to the
    #: pause is dubbed already (a streamed piece), so waiting for the sentence to go on costs
    #: the listener nothing: ``streamed_silence_ms``. ``judge`` never gives it; it replaces
    #: ``COMPLETE`` too in an utterance shorter than ``streamed_wait_when_complete_max_s``,
    #: and any verdict but a sure ``COMPLETE`` when the words after the last piece are too
    #: few for one (``Streamer.at_pause``).
    STREAMED = "streamed"


#: Marks that end a sentence in the scripts Whisper writes (a trailing ellipsis does not).
TERMINAL = frozenset(".!?。！？؟।")
#: Marks after which the speaker is still mid-sentence.
CONTINUING = (",", ";", ":", "-", "–", "—", "...", "…", "、", "，")

#: Words a clause does not end on (articles, conjunctions, prepositions, possessives), by
#: primary language code. A sentence ending on one is unfinished even with a full stop after
#: it: Whisper puts one after most fragments. English auxiliaries are left out ("Yes, I can."
#: ends on one).
TRAILING_WORDS: dict[str, frozenset[str]] = {
    "en": _set(
        "a an the and or but nor so because if when while although though that which who "
        "whose whom where than as of to in on at by for with from into onto about over under "
        "after before between through during without my your his her its our their these "
        "those very such"
    ),
    "es": _set(
        "el la los las un una unos unas y e o u pero ni que porque si cuando mientras aunque "
        "como de del a al en con por para sin sobre entre hasta desde mi mis tu tus su sus "
        "nuestro nuestra este esta estos estas ese esa es son era fue ser estar está muy "
        "más"
    ),
    "fr": _set(
        "le la les l un une des du de d et ou mais ni que qu car si quand lorsque comme à au "
        "aux en dans sur sous avec pour par sans entre vers chez mon ma mes ton ta tes son sa "
        "ses notre nos votre vos leur leurs ce cet cette ces est sont était être très "
        "plus"
    ),
    "de": _set(
        "der die das den dem des ein eine einen einem einer eines und oder aber denn dass weil "
        "wenn als ob von zu zum zur in im an am auf aus bei mit nach für über unter vor durch "
        "ohne mein meine dein deine sein seine ihr ihre unser unsere ist sind war waren sehr "
        "mehr"
    ),
    "it": _set(
        "il lo la i gli le un uno una e ed o ma né che perché se quando mentre come di del "
        "della a al alla da dal in nel con su per tra fra mio mia tuo tua suo sua nostro è "
        "sono era molto più"
    ),
    "pt": _set(
        "o a os as um uma uns umas e ou mas nem que porque se quando enquanto como de do da "
        "dos das em no na nos nas com por para sem sobre entre meu minha teu tua seu sua "
        "nosso nossa é são era muito mais"
    ),
    "vi": _set(
        "và với của là thì mà nhưng hoặc hay vì nếu khi rằng để cho những các một này đó "
        "trong trên dưới từ đến tại bởi do nên rất"
    ),
}
#: Short replies that are whole utterances although they have few words.
SHORT_REPLIES: dict[str, frozenset[str]] = {
    "en": _set(
        "yes no yeah yep nope ok okay sure right thanks hello hi bye goodbye exactly "
        "absolutely of course thank you"
    ),
    "es": _set("sí no vale claro gracias hola adiós exacto bueno"),
    "fr": _set("oui non d'accord merci bonjour salut exactement bien"),
    "de": _set("ja nein okay danke hallo tschüss genau gut"),
    "it": _set("sì no certo grazie ciao esatto bene"),
    "pt": _set("sim não claro obrigado obrigada olá tchau exato"),
    "vi": _set("vâng dạ không được cảm ơn chào đúng rồi"),
}
#: Scripts written without spaces between words, where a word count means nothing.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\u0e00-\u0e7f\uac00-\ud7af]")


def judge(
    text: str,
    language: str,
    min_words: int,
    end_probability: float | None = None,
    min_end_probability: float = 0.0,
) -> Verdict:
    """The verdict on ``text``, the words of an utterance up to a pause, in ``language``
    (a primary code such as ``en``).

    Unfinished: the text ends in a comma, dash or ellipsis; or on a word clauses do not end
    on; or it has fewer than ``min_words`` words and is not a known short reply; or its
    sentence-ending mark had a probability (``end_probability``, from the decoder) under
    ``min_end_probability``. Unknown: no sentence-ending mark at all. The short window leaves
    the full stop off at sentence ends as often as inside sentences ("Queen of Hearts"), so
    its absence says nothing either way. Complete otherwise."""
    stripped = unicodedata.normalize("NFKC", text).strip().strip("\"'”’)]»")
    if not stripped:
        return Verdict.UNKNOWN
    if stripped.endswith(CONTINUING):
        return Verdict.UNFINISHED
    tokens = normalise(stripped).split()
    if not tokens:
        return Verdict.UNKNOWN
    if tokens[-1] in TRAILING_WORDS.get(language, frozenset()):
        return Verdict.UNFINISHED
    if _UNSPACED.search(stripped) is None and len(tokens) < min_words:
        replies = SHORT_REPLIES.get(language, frozenset())
        if not all(token in replies for token in tokens):
            return Verdict.UNFINISHED
    if stripped[-1] not in TERMINAL:
        return Verdict.UNKNOWN
    if end_probability is not None and end_probability < min_end_probability:
        return Verdict.UNFINISHED
    return Verdict.COMPLETE
