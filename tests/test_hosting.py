"""Hosted rooms over the real signaling protocol: the host credential, every host message and
its errors, a guest trying a host action, forged and stale credentials (docs/protocol.md,
"Hosted rooms")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from callserver.probe import ScriptedCaller
from signaling.tokens import Grants, mint_token, verify_token
from tests.conftest import RunningServer
from tests.test_bad_input import assert_baseline, expect_error

SECRET = "hosted-rooms-test-secret-0123456789abcdef"


async def create_room(server: RunningServer, **body: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {SECRET}"} if body.pop("auth", False) else {}
    async with server.session.post(f"{server.url}/api/rooms", json=body, headers=headers) as r:
        answer: dict[str, Any] = await r.json()
        assert r.status == 201, answer
        return answer


async def room_info(server: RunningServer, room_id: str, query: str = "") -> dict[str, Any]:
    async with server.session.get(f"{server.url}/api/rooms/{room_id}{query}") as r:
        info: dict[str, Any] = await r.json()
        return info


async def joined(server: RunningServer, room: str, name: str, **kwargs: Any) -> ScriptedCaller:
    caller = server.caller(name=name, spoken="en", listen="es")
    await caller.join(room, **kwargs)
    return caller


async def host_and_guests(
    server: RunningServer, guests: int = 2, **room: Any
) -> tuple[dict[str, Any], ScriptedCaller, list[ScriptedCaller]]:
    made = await create_room(server, capacity=4, **room)
    host = await joined(server, made["id"], "Hana", host_key=made["host_key"])
    others = [await joined(server, made["id"], f"Guest {i}") for i in range(guests)]
    for _ in others:
        await host.expect("participant-joined")
    return made, host, others


async def close_all(*callers: ScriptedCaller) -> None:
    for caller in callers:
        await caller.close()


async def test_the_creator_hosts_a_titled_room_and_guests_see_who_is_in(
    server: RunningServer,
) -> None:
    made = await create_room(server, capacity=4, title="  Lesson 3: Hà Nội  ")
    assert made["title"] == "Lesson 3: Hà Nội" and made["capacity"] == 4
    assert len(made["host_key"]) >= 22 and made["host_key"] not in made["join_url"]
    host = await joined(server, made["id"], "Hana", host_key=made["host_key"])
    guest = server.caller(name="Gil", spoken="vi", listen="en")
    welcome = await guest.join(made["id"])
    assert welcome["room"]["title"] == "Lesson 3: Hà Nội" and not welcome["room"]["locked"]
    assert [(p["name"], p["host"]) for p in welcome["room"]["participants"]] == [
        ("Hana", True),
        ("Gil", False),
    ]
    assert welcome["participant"]["host"] is False
    info = await room_info(server, made["id"])
    assert info == {
        "id": made["id"],
        "capacity": 4,
        "occupancy": 2,
        "title": "Lesson 3: Hà Nội",
        "locked": False,
        "ended": False,
        "participants": [
            {"name": "Hana", "spoken": "en", "listen": "es", "host": True},
            {"name": "Gil", "spoken": "vi", "listen": "en", "host": False},
        ],
    }
    await close_all(host, guest)
    await assert_baseline(server)


@pytest.mark.parametrize(
    ("title", "why"),
    [("a\u202eb", "invisible"), ("x" * 81, "longer than 80"), (42, "text"), ("a\nb", "line")],
)
async def test_a_bad_title_is_refused_in_words(server: RunningServer, title: Any, why: str) -> None:
    async with server.session.post(f"{server.url}/api/rooms", json={"title": title}) as r:
        body = await r.json()
    assert r.status == 400 and body["error"]["code"] == "title_invalid"
    assert why in body["error"]["message"] and body["error"]["retry"] is False


async def test_a_guest_may_not_send_host_messages(server: RunningServer) -> None:
    made, host, (guest, other) = await host_and_guests(server)
    assert other.participant_id is not None
    for message in (
        {"type": "lock", "locked": True},
        {"type": "remove", "participant": other.participant_id},
        {"type": "mute", "participant": other.participant_id, "muted": True},
        {"type": "end"},
    ):
        await guest.send(message)
        error = await expect_error(guest, "not_host")
        assert error["in_reply_to"] == message["type"] and error["retry"] is False
    # Nothing happened: the guest and the others are all still in an open room.
    info = await room_info(server, made["id"])
    assert info["occupancy"] == 3 and not info["locked"] and not info["ended"]
    await close_all(host, guest, other)
    await assert_baseline(server)


@pytest.mark.parametrize("which", ["forged", "other room", "expired room", "unknown room"])
async def test_a_forged_or_stale_host_key_is_refused(
    make_server: Callable[..., Any], which: str
) -> None:
    async with make_server(room_empty_ttl_s=0.3) as server:
        made = await create_room(server, capacity=3)
        other = await create_room(server, capacity=3)
        room, key = made["id"], made["host_key"]
        if which == "forged":
            key = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
        elif which == "other room":
            key = other["host_key"]
        elif which == "expired room":
            # The room expires unused; a plain join makes a new room with the same id.
            async with server.session.get(f"{server.url}/api/rooms/{room}") as r:
                assert r.status == 200
            deadline = time.monotonic() + 10
            while (await room_info(server, room)).get("id") and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            squatter = await joined(server, room, "Sam")
        else:
            room = "no-such-hosted-room"
        caller = server.caller(name="Mallory")
        await caller.connect()
        await caller.send(
            {
                "type": "join",
                "room": room,
                "name": "M",
                "spoken": "en",
                "listen": "en",
                "host_key": key,
            }
        )
        error = await expect_error(caller, "host_key_invalid")
        assert error["retry"] is False and key not in error["message"]
        # The refused join took no place: the real host still gets in as host.
        if which in ("forged", "other room"):
            host = await joined(server, room, "Hana", host_key=made["host_key"])
            await host.close()
        if which == "expired room":
            await squatter.close()
        await caller.close()
        await assert_baseline(server)


async def test_lock_keeps_guests_out_and_lets_the_host_back_in(server: RunningServer) -> None:
    made, host, (guest,) = await host_and_guests(server, guests=1)
    await host.send({"type": "lock", "locked": True})
    for caller in (host, guest):
        update = await caller.expect("room-updated")
        assert update["room"]["locked"] is True and update["room"]["id"] == made["id"]
    late = server.caller(name="Late")
    await late.connect()
    await late.send(
        {"type": "join", "room": made["id"], "name": "Late", "spoken": "en", "listen": "en"}
    )
    error = await expect_error(late, "room_locked")
    assert "locked" in error["message"]
    assert (await room_info(server, made["id"]))["locked"] is True
    # The host leaves and comes back, through the lock, as host.
    await host.send({"type": "leave"})
    await host.expect("left")
    left = await guest.expect("participant-left")
    assert left["reason"] == "left"
    back = await host.join(made["id"], host_key=made["host_key"])
    assert back["participant"]["host"] is True and back["room"]["locked"] is True
    await host.send({"type": "lock", "locked": False})
    assert (await guest.expect("room-updated"))["room"]["locked"] is False
    await late.join(made["id"])
    await close_all(host, guest, late)
    await assert_baseline(server)


def join_message(room: str, name: str, **fields: Any) -> dict[str, Any]:
    return {"type": "join", "room": room, "name": name, "spoken": "en", "listen": "en", **fields}


async def test_a_dropped_guest_comes_back_through_the_lock_a_removed_one_does_not(
    server: RunningServer,
) -> None:
    made = await create_room(server, capacity=4)
    host = await joined(server, made["id"], "Hana", host_key=made["host_key"])
    ann, bob = server.caller(name="Ann"), server.caller(name="Bob")
    keys = {"Ann": (await ann.join(made["id"]))["rejoin_key"]}
    keys["Bob"] = (await bob.join(made["id"]))["rejoin_key"]
    assert len(set(keys.values())) == 2 and all(len(k) >= 22 for k in keys.values())
    await host.send({"type": "lock", "locked": True})
    await host.send({"type": "remove", "participant": bob.participant_id})
    await bob.expect("removed")
    await ann.close()  # Ann's connection drops
    for caller in (bob, ann, host):
        await caller.close()
    host = await joined(server, made["id"], "Hana", host_key=made["host_key"])
    for name, key in keys.items():
        caller = server.caller(name=name)
        await caller.connect()
        # Without the key nobody gets through the lock; with it only Ann, who was not removed.
        await caller.send(join_message(made["id"], name))
        await expect_error(caller, "room_locked")
        await caller.send(join_message(made["id"], name, rejoin_key=key))
        if name == "Ann":
            welcome = await caller.expect("welcome")
            assert welcome["rejoin_key"] == key and welcome["room"]["locked"] is True
        else:
            await expect_error(caller, "room_locked")
        await caller.close()
    await host.close()
    await assert_baseline(server)


async def test_the_room_goes_on_when_the_host_leaves_for_good(server: RunningServer) -> None:
    made, host, (ann, bob) = await host_and_guests(server)
    await host.close()
    await ann.expect("participant-left")
    await bob.expect("participant-left")
    await ann.send({"type": "update", "name": "Ann B."})
    assert (await bob.expect("participant-updated"))["participant"]["name"] == "Ann B."
    carol = await joined(server, made["id"], "Carol")
    assert (await room_info(server, made["id"]))["occupancy"] == 3
    await close_all(ann, bob, carol)
    await assert_baseline(server)


async def test_remove_puts_one_participant_out(server: RunningServer) -> None:
    made, host, (ann, bob) = await host_and_guests(server)
    assert ann.participant_id is not None and host.participant_id is not None
    await host.send({"type": "remove", "participant": ann.participant_id})
    removed = await ann.expect("removed")
    assert removed["by"] == "Hana"
    for caller in (host, bob):
        left = await caller.expect("participant-left")
        assert left == {
            "v": 1,
            "type": "participant-left",
            "participant_id": ann.participant_id,
            "reason": "removed",
        }
    # Out of the room, the connection still open: room messages are refused as for anyone.
    await ann.send({"type": "update", "name": "Ann"})
    await expect_error(ann, "not_joined")
    await host.send({"type": "remove", "participant": ann.participant_id})
    await expect_error(host, "peer_not_found")
    await host.send({"type": "remove", "participant": host.participant_id})
    error = await expect_error(host, "peer_not_found")
    assert "leave" in error["message"]
    assert (await room_info(server, made["id"]))["occupancy"] == 2
    await close_all(host, ann, bob)
    await assert_baseline(server)


async def test_mute_is_seen_by_everyone_and_lifted_only_by_the_host(
    server: RunningServer,
) -> None:
    _, host, (ann, bob) = await host_and_guests(server)
    assert ann.participant_id is not None
    await host.send({"type": "mute", "participant": ann.participant_id, "muted": True})
    for caller in (host, ann, bob):
        update = await caller.expect("participant-updated")
        assert update["participant"]["id"] == ann.participant_id
        assert update["participant"]["muted"] is True
    await ann.send({"type": "mute", "participant": ann.participant_id, "muted": False})
    await expect_error(ann, "not_host")
    await host.send({"type": "mute", "participant": ann.participant_id, "muted": False})
    assert (await bob.expect("participant-updated"))["participant"]["muted"] is False
    await host.send({"type": "mute", "participant": "p_nobody", "muted": True})
    await expect_error(host, "peer_not_found")
    await close_all(host, ann, bob)
    await assert_baseline(server)


async def test_end_closes_the_room_for_everyone(server: RunningServer) -> None:
    made, host, (ann, bob) = await host_and_guests(server)
    await host.send({"type": "end"})
    for caller in (host, ann, bob):
        ended = await caller.expect("ended")
        assert ended["by"] == "Hana"
    info = await room_info(server, made["id"])
    assert info["ended"] is True and info["occupancy"] == 0
    for key in (None, made["host_key"]):
        await ann.send(
            {
                "type": "join",
                "room": made["id"],
                "name": "Ann",
                "spoken": "en",
                "listen": "en",
                "host_key": key,
            }
        )
        error = await expect_error(ann, "room_ended")
        assert "ended" in error["message"]
    await close_all(host, ann, bob)
    await assert_baseline(server)


async def test_a_participant_who_turns_video_off_is_announced(server: RunningServer) -> None:
    _, host, (ann,) = await host_and_guests(server, guests=1)
    await ann.send({"type": "prefs", "video": False})
    applied = await ann.expect("prefs")
    assert applied["video"] is False and applied["dub"] is True
    update = await host.expect("participant-updated")
    assert update["participant"]["id"] == ann.participant_id
    assert update["participant"]["video"] is False
    # Changing only the mix does not announce anything.
    await ann.send({"type": "prefs", "original_volume": 0.5})
    await ann.expect("prefs")
    await ann.send({"type": "prefs", "video": True})
    assert (await host.expect("participant-updated"))["participant"]["video"] is True
    await close_all(host, ann)
    await assert_baseline(server)


async def test_with_a_join_secret_the_host_holds_a_host_token(
    make_server: Callable[..., Any],
) -> None:
    async with make_server(join_secret=SECRET) as server:
        made = await create_room(server, capacity=3, title="Board", auth=True)
        key = SECRET.encode()
        assert verify_token(key, made["host_token"], made["id"]).grants.host
        assert not verify_token(key, made["token"], made["id"]).grants.host
        assert made["host_token"] not in made["join_url"]
        host = server.caller(name="Hana")
        welcome = await host.join(made["id"], token=made["host_token"])
        assert welcome["participant"]["host"] is True
        # The page shares a guest token, never its own host token.
        guest_token = welcome["guest_token"]
        assert not verify_token(key, guest_token, made["id"]).grants.host
        guest = server.caller(name="Gil")
        guest_welcome = await guest.join(made["id"], token=guest_token)
        assert guest_welcome["participant"]["host"] is False
        assert "guest_token" not in guest_welcome
        await guest.send({"type": "lock", "locked": True})
        await expect_error(guest, "not_host")
        # Who is in is shown only with a token for the room.
        assert (await room_info(server, made["id"]))["participants"] is None
        listed = await room_info(server, made["id"], f"?token={made['token']}")
        assert [p["name"] for p in listed["participants"]] == ["Hana", "Gil"]
        # Host tokens are checked like any other.
        stale = mint_token(key, made["id"], 60, now=time.time() - 3600, grants=Grants(host=True))
        elsewhere = mint_token(key, "another-room", 60, grants=Grants(host=True))
        for token, code in ((stale, "token_expired"), (elsewhere, "token_wrong_room")):
            caller = server.caller(name="Mallory")
            await caller.connect()
            await caller.send(
                {
                    "type": "join",
                    "room": made["id"],
                    "name": "M",
                    "spoken": "en",
                    "listen": "en",
                    "token": token,
                }
            )
            await expect_error(caller, code)
            await caller.close()
        await close_all(host, guest)
        await assert_baseline(server)
