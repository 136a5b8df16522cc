"""Checking a participant's SDP offer before aiortc sees it.

aiortc trusts what it parses: an offer without a DTLS fingerprint is answered and then fails
inside a background task with an ``AssertionError``; a BUNDLE group naming an absent section
fails with ``'NoneType' object has no attribute 'transport'``; a malformed attribute surfaces as
``coroutine raised StopIteration``. Every such offer is refused here instead, with a sentence a
person can act on, so the peer connection is never created for an offer that cannot connect.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from aiortc.codecs import CODECS
from aiortc.rtcdtlstransport import X509_DIGEST_ALGORITHMS
from aiortc.rtp import FORBIDDEN_PAYLOAD_TYPES
from aiortc.sdp import SessionDescription

from signaling.errors import ErrorCode, SignalingError

#: The DTLS roles an offerer may take (RFC 8842 5.2: ``actpass``; ``active`` is tolerated).
_OFFER_SETUP = ("actpass", "active")
_SETUP_VALUES = ("actpass", "active", "passive")
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_KINDS = ("audio", "video", "application")
_DATA_PROFILES = ("UDP/DTLS/SCTP", "TCP/DTLS/SCTP", "DTLS/SCTP")

# No control characters and no lone surrogates (JSON can carry "\ud800"; UTF-8 cannot).
_LINE = re.compile(r"[a-z]=[^\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]*")
_MLINE = re.compile(r"m=([a-z]+) ([0-9]{1,5}) ([A-Z/]+) ([^ ].*)")
_CONNECTION = re.compile(r"IN IP[46] [^ ]+")
# RFC 8839 5.4: ice-char is ALPHA / DIGIT / "+" / "/"; ufrag 4-256, pwd 22-256 characters.
_UFRAG = re.compile(r"[A-Za-z0-9+/]{4,256}")
_PWD = re.compile(r"[A-Za-z0-9+/]{22,256}")
_FINGERPRINT = re.compile(r"(\S+) ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*)")
_SDP_WORD = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
_MID = re.compile(_SDP_WORD)
# Attribute values aiortc splits and converts without a check, so a bad one is an exception.
_VALUE_FORMS: dict[str, re.Pattern[str]] = {
    "rtpmap": re.compile(r"[0-9]{1,3} [^ /]+/[0-9]{1,6}(?:/[0-9]{1,2})?"),
    "fmtp": re.compile(r"[0-9]{1,3} \S.*"),
    "rtcp-fb": re.compile(r"(?:\*|[0-9]{1,3}) \S+(?: .*)?"),
    "extmap": re.compile(r"[0-9]{1,3}(?:/[a-z]+)? \S+"),
    "rtcp": re.compile(r"[0-9]{1,5}(?: IN IP[46] [^ ]+)?"),
    "ssrc": re.compile(r"[0-9]{1,10} [^: ]+:.*"),
    "ssrc-group": re.compile(_SDP_WORD + r"(?: [0-9]{1,10})*"),
    "sctp-port": re.compile(r"[0-9]{1,5}"),
    "max-message-size": re.compile(r"[0-9]{1,12}"),
    "sctpmap": re.compile(r"[0-9]{1,5} \S.*"),
}
_CANDIDATE = re.compile(
    r"\S+ [0-9]{1,3} (?:udp|tcp|UDP|TCP) [0-9]{1,10} (\S+) [0-9]{1,5} typ \S+(?: \S+ \S+)*"
)
_PORT_FIELDS = ("rport",)
_NUMBER = re.compile(r"[0-9]{1,5}")


def _codec_names(kind: str) -> frozenset[tuple[str, int]]:
    return frozenset(
        (codec.mimeType.split("/", 1)[1].lower(), codec.clockRate)
        for codec in CODECS[kind]
        if not codec.mimeType.lower().endswith("/rtx")
    )


#: (codec name, clock rate) pairs aiortc negotiates, as in an ``a=rtpmap`` line.
AUDIO_CODECS = _codec_names("audio")
VIDEO_CODECS = _codec_names("video")


@dataclass(frozen=True)
class OfferLimits:
    """Sizes an offer may have (the byte size is checked before, as ``sdp_too_large``)."""

    max_media_sections: int = 8
    max_candidates: int = 64


@dataclass
class _Section:
    kind: str
    port: int
    profile: str
    formats: list[str]
    number: int
    attrs: dict[str, list[str]] = field(default_factory=dict)

    def first(self, name: str) -> str | None:
        values = self.attrs.get(name)
        return values[0] if values else None


def refuse(message: str) -> SignalingError:
    """An ``sdp_invalid`` refusal with ``message`` for a person."""
    return SignalingError(ErrorCode.SDP_INVALID, message)


def check_offer(sdp: str, limits: OfferLimits | None = None) -> None:
    """Raise ``sdp_invalid`` with a sentence for a person unless ``sdp`` can be answered."""
    limits = limits or OfferLimits()
    session, sections = _split(sdp, limits)
    for section in sections:
        _check_section(section, session)
    _check_audio(sections)
    _check_bundle(session, sections)
    candidates = sum(len(s.attrs.get("candidate", [])) for s in sections)
    if candidates > limits.max_candidates:
        raise refuse(
            f"The offer lists {candidates} ICE candidates; this server takes at most "
            f"{limits.max_candidates}."
        )
    try:
        SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises anything; the message must not show it
        raise refuse("The offer could not be read as a session description (SDP).") from exc


def _split(sdp: str, limits: OfferLimits) -> tuple[dict[str, list[str]], list[_Section]]:
    """The session's attributes and each media section, every line checked for its form."""
    # splitlines, as aiortc splits, so both see the same lines.
    lines = sdp.splitlines()
    if not lines or lines[0].strip() != "v=0":
        raise refuse("The offer is not a session description (SDP): it must start with 'v=0'.")
    session: dict[str, list[str]] = {}
    sections: list[_Section] = []
    for number, line in enumerate(lines, start=1):
        if not _LINE.fullmatch(line):
            raise refuse(f"Line {number} of the offer is not an SDP line of the form 'x=value'.")
        if line.startswith("m="):
            sections.append(_media_line(line, number))
            if len(sections) > limits.max_media_sections:
                raise refuse(f"The offer has more than {limits.max_media_sections} media sections.")
        elif line.startswith("c=") and not _CONNECTION.fullmatch(line[2:]):
            raise refuse(f"Line {number} of the offer has a malformed connection address.")
        elif line.startswith("a="):
            name, _, value = line[2:].partition(":")
            _check_value(name, value, number)
            target = sections[-1].attrs if sections else session
            target.setdefault(name, []).append(value)
    if not sections:
        raise refuse("The offer has no media section, so there is nothing to answer.")
    return session, sections


def _media_line(line: str, number: int) -> _Section:
    match = _MLINE.fullmatch(line)
    if match is None:
        raise refuse(f"Line {number} of the offer is a malformed media ('m=') line.")
    kind, port, profile, formats = match[1], int(match[2]), match[3], match[4].split()
    if kind not in _KINDS:
        raise refuse(
            f"The offer has a {kind!r} media section; this server takes audio, video and a "
            "data channel only."
        )
    if port > 65535:
        raise refuse(f"Line {number} of the offer has a port above 65535.")
    if kind != "application":
        for fmt in formats:
            if not _NUMBER.fullmatch(fmt) or int(fmt) > 255 or int(fmt) in FORBIDDEN_PAYLOAD_TYPES:
                raise refuse(f"Line {number} of the offer lists an invalid RTP payload type.")
    elif profile not in _DATA_PROFILES:
        raise refuse("The offer's data channel section does not use DTLS/SCTP.")
    elif profile == "DTLS/SCTP" and not _NUMBER.fullmatch(formats[0]):
        raise refuse("The offer's data channel section has no SCTP port.")
    return _Section(kind, port, profile, formats, number)


def _check_value(name: str, value: str, number: int) -> None:
    form = _VALUE_FORMS.get(name)
    if form is not None and not form.fullmatch(value):
        raise refuse(f"Line {number} of the offer has a malformed 'a={name}' attribute.")
    if name == "candidate":
        _check_candidate(value, number)
    elif name == "setup" and value not in _SETUP_VALUES:
        raise refuse(f"Line {number} of the offer has an unknown DTLS setup role {value[:20]!r}.")
    elif name == "fingerprint" and not _FINGERPRINT.fullmatch(value):
        raise refuse(f"Line {number} of the offer has a malformed DTLS fingerprint.")
    elif name == "mid" and not _MID.fullmatch(value):
        raise refuse(f"Line {number} of the offer has a malformed media id ('a=mid').")


def _check_candidate(value: str, number: int) -> None:
    match = _CANDIDATE.fullmatch(value)
    if match is None:
        raise refuse(f"Line {number} of the offer has a malformed ICE candidate.")
    address = match[1]
    if not address.endswith(".local"):
        # A host name would make the server resolve (and then probe) any name a client picks.
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise refuse(
                f"Line {number} of the offer has an ICE candidate whose address is neither an "
                "IP address nor an mDNS name."
            ) from None
    extra = value.split()[8:]
    for key, item in zip(extra[::2], extra[1::2], strict=False):
        if key in _PORT_FIELDS and not (_NUMBER.fullmatch(item) and int(item) <= 65535):
            raise refuse(f"Line {number} of the offer has an ICE candidate with a bad port.")


def _check_section(section: _Section, session: dict[str, list[str]]) -> None:
    where = f"the offer's {section.kind} section (line {section.number})"

    def attr(name: str) -> list[str]:
        # A media-level attribute overrides the session-level one, as aiortc reads them.
        return section.attrs.get(name) or session.get(name) or []

    ufrag, pwd = attr("ice-ufrag"), attr("ice-pwd")
    if not ufrag or not pwd:
        raise refuse(f"{where.capitalize()} has no ICE credentials (ice-ufrag and ice-pwd).")
    if not _UFRAG.fullmatch(ufrag[-1]) or not _PWD.fullmatch(pwd[-1]):
        raise refuse(
            f"The ICE credentials of {where} are malformed: ice-ufrag needs 4 to 256 and "
            "ice-pwd 22 to 256 letters, digits, '+' or '/'."
        )
    fingerprints = section.attrs.get("fingerprint", []) + session.get("fingerprint", [])
    if not fingerprints:
        raise refuse(
            f"{where.capitalize()} has no DTLS fingerprint, so a secure connection cannot be "
            "set up."
        )
    if not any(_known_fingerprint(value) for value in fingerprints):
        raise refuse(
            f"{where.capitalize()} has no DTLS fingerprint this server can check (a "
            f"{', '.join(sorted(X509_DIGEST_ALGORITHMS))} digest of the right length)."
        )
    setup = attr("setup")
    if not setup:
        raise refuse(f"{where.capitalize()} has no DTLS setup role ('a=setup').")
    if setup[-1] not in _OFFER_SETUP:
        raise refuse(
            f"{where.capitalize()} has the DTLS setup role {setup[-1]!r}; an offer must use "
            "'actpass' (or 'active')."
        )
    mids = section.attrs.get("mid", [])
    if len(mids) != 1:
        raise refuse(f"{where.capitalize()} needs exactly one media id ('a=mid').")
    if section.kind == "application":
        if section.profile != "DTLS/SCTP" and section.first("sctp-port") is None:
            raise refuse("The offer's data channel section has no SCTP port ('a=sctp-port').")
        return
    if "rtcp-mux" not in section.attrs:
        raise refuse(
            f"{where.capitalize()} does not multiplex RTCP with RTP ('a=rtcp-mux'), which "
            "this server needs."
        )
    mapped = {value.split(" ", 1)[0] for value in section.attrs.get("rtpmap", [])}
    for name in ("fmtp", "rtcp-fb"):
        for value in section.attrs.get(name, []):
            payload_type = value.split(" ", 1)[0]
            if payload_type != "*" and payload_type not in mapped:
                raise refuse(
                    f"{where.capitalize()} has an 'a={name}' line for payload type "
                    f"{payload_type}, which has no 'a=rtpmap' line."
                )
    # aiortc refuses a section without a common codec even when its port is 0 (rejected).
    known = AUDIO_CODECS if section.kind == "audio" else VIDEO_CODECS
    if not _codecs_in(section, known):
        raise refuse(
            f"{where.capitalize()} offers no {section.kind} codec this server speaks "
            f"({_names(known)})."
        )


def _known_fingerprint(value: str) -> bool:
    match = _FINGERPRINT.fullmatch(value)
    if match is None:
        return False
    algorithm = match[1].lower()
    if algorithm not in X509_DIGEST_ALGORITHMS:
        return False
    # The digest has as many bytes as the hash (sha-256: 32); another length never matches.
    return (len(match[2]) + 1) // 3 == X509_DIGEST_ALGORITHMS[algorithm].digest_size


def _codecs_in(section: _Section, known: frozenset[tuple[str, int]]) -> bool:
    formats = set(section.formats)
    for value in section.attrs.get("rtpmap", []):
        payload_type, description = value.split(" ", 1)
        name, rate = description.split("/")[:2]
        if payload_type in formats and (name.lower(), int(rate)) in known:
            return True
    return False


def _names(codecs: frozenset[tuple[str, int]]) -> str:
    return ", ".join(sorted({name for name, _ in codecs}))


def _check_audio(sections: list[_Section]) -> None:
    audio = [s for s in sections if s.kind == "audio" and s.port != 0]
    if not audio and any(s.kind == "audio" for s in sections):
        raise refuse("The offer's audio section is rejected (port 0), so no voice could flow.")
    if not audio:
        raise refuse(
            "The offer has no audio section, so the server cannot hear you or send you the call."
        )
    if all("inactive" in s.attrs for s in audio):
        raise refuse("The offer's audio is inactive, so no voice could go either way.")
    if sum(s.kind == "application" for s in sections) > 1:
        raise refuse("The offer has more than one data channel section; this server takes one.")


def _check_bundle(session: dict[str, list[str]], sections: list[_Section]) -> None:
    bundles = [v.split()[1:] for v in session.get("group", []) if v.split()[:1] == ["BUNDLE"]]
    if len(bundles) > 1:
        raise refuse("The offer has more than one BUNDLE group; this server takes one.")
    mids = [s.attrs["mid"][0] for s in sections]
    if len(set(mids)) != len(mids):
        raise refuse("Two media sections of the offer have the same media id ('a=mid').")
    if not bundles:
        return
    items = bundles[0]
    if len(set(items)) != len(items):
        raise refuse("The offer's BUNDLE group names a media section twice.")
    missing = [item for item in items if item not in mids]
    if missing:
        raise refuse(
            f"The offer's BUNDLE group names the media id {missing[0][:20]!r}, which no media "
            "section has."
        )
