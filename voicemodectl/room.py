"""voicemodectl room: LiveKit rooms, who is in them, and join tokens for a person."""

from __future__ import annotations

import argparse
import re
import time

from voicemodectl import output
from voicemoded.api.client import Client

#: ``90``, ``90s``, ``30m``, ``1h``, ``1h30m``: a time to live as a person types it.
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?")


def duration(text: str) -> float:
    """Seconds from ``1h``, ``30m``, ``90s``, ``1h30m`` or a plain number of seconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 3600, 90s, 30m, 1h, 1h30m)")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("room", help="LiveKit rooms: create, list, delete, participants, join tokens")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    create = verbs.add_parser("create", help="create a room (an existing one is left as it is)")
    create.add_argument("name")
    create.add_argument(
        "--empty-timeout", type=int, default=0, metavar="S", help="seconds it stays open with nobody in it"
    )
    create.add_argument("--max-participants", type=int, default=0, metavar="N", help="0: no limit")
    create.set_defaults(func=create_cmd)
    verbs.add_parser("list", help="the rooms on the server").set_defaults(func=list_cmd)
    delete = verbs.add_parser("delete", help="delete a room, disconnecting everyone in it")
    delete.add_argument("name")
    delete.set_defaults(func=delete_cmd)
    participants = verbs.add_parser("participants", help="who is in a room")
    participants.add_argument("name")
    participants.set_defaults(func=participants_cmd)
    token = verbs.add_parser("token", help="a join token for a person")
    token.add_argument("name", help="the room")
    token.add_argument("--identity", default="", help="who joins, unique in the room (needed)")
    token.add_argument("--name", dest="display_name", default="", help="the name others see")
    token.add_argument("--ttl", type=duration, default=0.0, help="time to live: 90s, 30m, 1h (default 1h)")
    token.set_defaults(func=token_cmd)


def _when(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


def create_cmd(args: argparse.Namespace, client: Client) -> int:
    room = client.create_room(
        args.name, empty_timeout=args.empty_timeout, max_participants=args.max_participants
    )
    if args.json:
        output.print_json(room)
    else:
        print(f"room {room.name} ({room.sid}): {room.num_participants} participants")
    return output.OK


def list_cmd(args: argparse.Namespace, client: Client) -> int:
    response = client.list_rooms()
    if args.json:
        output.print_json(response)
        return output.OK
    if not response.rooms:
        print("no rooms (voicemodectl room create NAME makes one)")
        return output.OK
    rows = [
        (r.name, r.num_participants, r.max_participants or "-", r.empty_timeout_seconds, _when(r.created_at.seconds), r.sid)
        for r in response.rooms
    ]  # fmt: skip
    print(output.table(rows, ["NAME", "PARTICIPANTS", "MAX", "EMPTY TIMEOUT", "CREATED", "SID"]))
    return output.OK


def delete_cmd(args: argparse.Namespace, client: Client) -> int:
    response = client.delete_room(args.name)
    if args.json:
        output.print_json(response)
    else:
        print(f"room {response.name}: deleted")
    return output.OK


def participants_cmd(args: argparse.Namespace, client: Client) -> int:
    response = client.list_participants(args.name)
    if args.json:
        output.print_json(response)
        return output.OK
    if not response.participants:
        print(f"nobody is in {response.room}")
        return output.OK
    rows = [
        (p.identity, p.name, p.state, p.tracks, _when(p.joined_at.seconds)) for p in response.participants
    ]
    print(output.table(rows, ["IDENTITY", "NAME", "STATE", "TRACKS", "JOINED"]))
    return output.OK


def token_cmd(args: argparse.Namespace, client: Client) -> int:
    token = client.create_token(args.name, args.identity, name=args.display_name, ttl=args.ttl)
    if args.json:
        output.print_json(token)
        return output.OK
    print(token.token)
    print(f"url:     {token.url}")
    print(f"room:    {token.room} as {token.identity}, until {_when(token.expires_at.seconds)}")
    print(
        "join:    connect a LiveKit client to the url with this token (the SDKs, or meet.livekit.io: Custom)"
    )
    return output.OK
