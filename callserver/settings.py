"""Server options: typed, validated on construction, settable as ``CALLSERVER_<NAME>``.

Every limit the server enforces is a field here, so an operator can find and change it in one
place. The README's configuration table is generated from these descriptions
(``callserver settings --markdown``).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from models.env import EnvSettings, split_list
from signaling.tokens import TokenOptions

WEB_DIR_DEFAULT = Path(__file__).resolve().parent.parent / "web"


class Settings(EnvSettings):
    """All server options. Defaults suit one laptop; see README for deployment values."""

    model_config = SettingsConfigDict(env_prefix="CALLSERVER_", extra="ignore", frozen=True)

    # --- network -------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port (0 picks a free one).")
    http_header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds a client has to send a request's headers, counted from connecting "
        "(or, on a kept-alive connection, from the request's first byte); a slower one is "
        "answered 408 and closed.",
    )
    public_url: str | None = Field(
        None,
        description="Base URL users reach the server at, used in join links. "
        "Default: taken from each request's Host header.",
    )
    trust_forwarded_for: bool = Field(
        False,
        description="Take the client address from X-Forwarded-For and the scheme of join links "
        "from X-Forwarded-Proto (only behind a trusted proxy).",
    )
    ice_host_addresses: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host addresses the server offers as ICE candidates (comma separated). "
        "Empty: every non-loopback interface. Use 127.0.0.1 for single-machine tests.",
    )
    server_stun_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="STUN URLs the server itself queries to learn its public address when it "
        "sits behind NAT. Empty: none (aiortc would otherwise ask Google's STUN server).",
    )
    stun_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="STUN URLs handed to the page for its connections (to the server and the "
        "browser-to-browser video), e.g. stun:stun.example.org:3478.",
    )
    turn_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="TURN URLs handed to the page (comma separated)."
    )
    turn_username: str | None = Field(None, description="TURN user name handed to the page.")
    turn_credential: SecretStr | None = Field(None, description="TURN credential for the page.")

    # --- rooms and joining -----------------------------------------------------------------
    room_capacity: int = Field(2, ge=2, description="Participants in a room created without one.")
    room_max_capacity: int = Field(
        8, ge=2, le=64, description="Largest capacity a hosted room may ask for."
    )
    max_rooms: int = Field(1000, ge=1, description="Rooms that may exist at once.")
    room_empty_ttl_s: float = Field(
        300.0, gt=0, description="Seconds an empty room lives before it expires."
    )
    join_secret: SecretStr | None = Field(
        None,
        description="When set, joining needs a join token for the room: a JWT signed with this "
        "secret (HS256; at least 32 bytes), minted by `callserver token ROOM` or any JWT "
        "library (docs/protocol.md).",
    )
    token_ttl_s: int = Field(3600, gt=0, description="Default lifetime of minted join tokens.")
    join_token_leeway_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="Seconds of clock difference allowed when checking a join token's exp, "
        "nbf and iat.",
    )
    join_token_issuer: str | None = Field(
        None,
        description="When set, join tokens must carry this `iss`, and minted ones do. "
        "Default: `iss` is not checked.",
    )
    join_token_audience: str | None = Field(
        None,
        description="When set, join tokens must name this in `aud`, and minted ones do. "
        "Default: a token with an `aud` is refused.",
    )
    joins_per_minute: int = Field(
        30, ge=1, description="Join attempts allowed per client address per minute."
    )
    name_max_length: int = Field(64, ge=1, le=1000, description="Longest display name.")
    room_title_max_length: int = Field(
        80, ge=1, le=1000, description="Longest room title a host may give a hosted room."
    )

    # --- signaling limits -------------------------------------------------------------------
    ws_max_message_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Largest WebSocket message accepted, counted after inflating a compressed "
        "one; larger closes 1009.",
    )
    sdp_max_bytes: int = Field(32 * 1024, ge=512, description="Largest SDP accepted in a message.")
    sdp_max_media_sections: int = Field(
        8,
        ge=2,
        le=64,
        description="Most media sections (m= lines) in an offer to the server; the page sends two.",
    )
    sdp_max_candidates: int = Field(
        64,
        ge=1,
        le=1000,
        description="Most ICE candidates in an offer to the server; each one is probed.",
    )
    ice_candidate_max_bytes: int = Field(
        2048, ge=128, description="Largest relayed ICE candidate string."
    )
    max_protocol_errors: int = Field(
        20, ge=1, description="Protocol errors tolerated on one connection before it is closed."
    )
    messages_per_second: float = Field(
        50.0, gt=0, description="Sustained signaling messages per second per connection."
    )
    ws_heartbeat_s: float = Field(
        20.0, gt=0, description="WebSocket ping interval; a peer silent for twice this is dropped."
    )

    # --- media --------------------------------------------------------------------------------
    pc_close_timeout_s: float = Field(
        5.0, gt=0, description="Seconds allowed for closing one peer connection."
    )
    pc_connect_timeout_s: float = Field(
        30.0, gt=0, description="Seconds a peer connection may take to connect before it is closed."
    )
    mixer_max_queue_frames: int = Field(
        10,
        ge=2,
        description="20 ms frames buffered per speaker and listener before the oldest are "
        "dropped (bounds added latency).",
    )
    mixer_prebuffer_frames: int = Field(
        1,
        ge=0,
        description="Frames a speaker's queue holds before it starts to play after a gap; "
        "absorbs arrival jitter at the cost of 20 ms each.",
    )
    mixer_arrival_margin_ms: float = Field(
        3.0,
        ge=0,
        lt=20,
        description="How long after a listener's speakers' frames arrive their mix is pulled "
        "(the room clock places each listener's 20 ms ticks there).",
    )
    mixer_arrival_quantile: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Share of a speaker's recent frames that should arrive before the tick "
        "that mixes them; the rest wait one tick in the speaker's queue.",
    )

    # --- dubbed speech in each listener's mix ---------------------------------------------------
    translate_calls: bool = Field(
        True,
        description="Recognise, caption, translate and dub what participants say. Off: the "
        "server only mixes the original voices.",
    )
    dub_gain: float = Field(1.0, gt=0, le=4, description="Level of dubbed speech in the mix.")
    dub_duck_db: float = Field(
        -15.0, le=0, ge=-60, description="Level of the original voices while a dub plays."
    )
    dub_duck_ramp_ms: float = Field(
        50.0, ge=0, le=1000, description="Length of the duck's fade down and up."
    )
    dub_speedup_backlog_s: float = Field(
        1.0,
        gt=0,
        description="Queued dub audio per listener (seconds) above which playback speeds up, "
        "pitch kept, to catch up, while another dub is coming (one waits, or someone the "
        "listener gets dubs of is speaking); back to natural speed under half of it.",
    )
    dub_max_speedup: float = Field(
        1.5, ge=1, le=2, description="Fastest catch-up playback rate (the pitch stays)."
    )
    dub_skip_backlog_s: float = Field(
        8.0,
        gt=0,
        description="Queued dub audio per listener above which the oldest waiting dubs are "
        "skipped (with a caption marker).",
    )

    # --- speech API ---------------------------------------------------------------------------
    api_max_upload_bytes: int = Field(
        25 * 1024 * 1024, ge=1024, description="Largest audio upload to POST /api/stt."
    )
    api_max_texts: int = Field(
        32, ge=1, le=1024, description="Most texts one POST /api/translate may carry."
    )
    preload_engines: bool = Field(
        True,
        description="Build the speech engines and load the Whisper model right after start, "
        "so the first request does not wait for them.",
    )

    # --- operations -----------------------------------------------------------------------------
    drain_timeout_s: float = Field(
        30.0, ge=0, description="On SIGTERM, seconds calls may go on before they are closed."
    )
    room_sweep_interval_s: float = Field(
        5.0, gt=0, description="How often expired rooms are swept."
    )
    log_level: str = Field("INFO", description="Python logging level.")
    log_format: str = Field("text", description="`text` (key=value) or `json`.")
    web_dir: Path = Field(WEB_DIR_DEFAULT, description="Folder holding the call page.")

    @field_validator(
        "ice_host_addresses", "server_stun_urls", "stun_urls", "turn_urls", mode="before"
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("ice_host_addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_address(item)
        return value

    @field_validator("server_stun_urls", "stun_urls", "turn_urls")
    @classmethod
    def _ice_urls(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"{item!r} is not a stun:, stuns:, turn: or turns: URL")
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value not in ("text", "json"):
            raise ValueError("log_format must be 'text' or 'json'")
        return value

    @model_validator(mode="after")
    def _capacities(self) -> Settings:
        if self.room_capacity > self.room_max_capacity:
            raise ValueError("room_capacity may not exceed room_max_capacity")
        if self.dub_skip_backlog_s < self.dub_speedup_backlog_s:
            raise ValueError("dub_skip_backlog_s may not be below dub_speedup_backlog_s")
        return self

    def ice_servers(self) -> list[dict[str, Any]]:
        """The RTCIceServer list the page uses for its connections, to the server and to peers."""
        servers: list[dict[str, Any]] = []
        if self.stun_urls:
            servers.append({"urls": list(self.stun_urls)})
        if self.turn_urls:
            turn: dict[str, Any] = {"urls": list(self.turn_urls)}
            if self.turn_username:
                turn["username"] = self.turn_username
            if self.turn_credential:
                turn["credential"] = self.turn_credential.get_secret_value()
            servers.append(turn)
        return servers

    def join_token_options(self) -> TokenOptions:
        """How join tokens are checked and minted, beyond the secret."""
        return TokenOptions(
            leeway_s=self.join_token_leeway_s,
            issuer=self.join_token_issuer,
            audience=self.join_token_audience,
        )
