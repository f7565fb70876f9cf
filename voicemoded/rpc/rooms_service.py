"""The Rooms service: LiveKit rooms, their participants and join tokens (over
:class:`~voicemoded.app.rooms.Rooms`)."""

from __future__ import annotations

import grpc

from voicemoded.api.v1 import rooms_pb2, rooms_pb2_grpc
from voicemoded.app.doors import GRPC
from voicemoded.app.rooms import Rooms
from voicemoded.livekit.rooms import JoinToken, Participant, Room
from voicemoded.render import timestamp
from voicemoded.rpc.errors import unary


def room_info(r: Room) -> rooms_pb2.RoomInfo:
    return rooms_pb2.RoomInfo(
        name=r.name,
        sid=r.sid,
        num_participants=r.participants,
        max_participants=r.max_participants,
        empty_timeout_seconds=r.empty_timeout,
        created_at=timestamp(r.created_at),
    )


def participant_info(p: Participant) -> rooms_pb2.ParticipantInfo:
    return rooms_pb2.ParticipantInfo(
        identity=p.identity,
        name=p.name,
        sid=p.sid,
        state=p.state,
        joined_at=timestamp(p.joined_at),
        tracks=p.tracks,
    )


def join_token(t: JoinToken) -> rooms_pb2.JoinToken:
    return rooms_pb2.JoinToken(
        token=t.token,
        url=t.url,
        identity=t.identity,
        room=t.room,
        name=t.name,
        expires_at=timestamp(t.expires_at),
    )


class RoomsService(rooms_pb2_grpc.RoomsServicer):
    def __init__(self, rooms: Rooms) -> None:
        self._rooms = rooms

    @unary
    async def CreateRoom(
        self, request: rooms_pb2.CreateRoomRequest, context: grpc.aio.ServicerContext
    ) -> rooms_pb2.RoomInfo:
        room = await self._rooms.create(
            request.name,
            empty_timeout=request.empty_timeout_seconds,
            max_participants=request.max_participants,
        )
        return room_info(room)

    @unary
    async def ListRooms(
        self, request: rooms_pb2.ListRoomsRequest, context: grpc.aio.ServicerContext
    ) -> rooms_pb2.ListRoomsResponse:
        return rooms_pb2.ListRoomsResponse(rooms=[room_info(r) for r in await self._rooms.list()])

    @unary
    async def DeleteRoom(
        self, request: rooms_pb2.RoomRequest, context: grpc.aio.ServicerContext
    ) -> rooms_pb2.DeleteRoomResponse:
        await self._rooms.delete(request.name)
        return rooms_pb2.DeleteRoomResponse(name=request.name)

    @unary
    async def ListParticipants(
        self, request: rooms_pb2.RoomRequest, context: grpc.aio.ServicerContext
    ) -> rooms_pb2.ListParticipantsResponse:
        participants = await self._rooms.participants(request.name)
        return rooms_pb2.ListParticipantsResponse(
            room=request.name, participants=[participant_info(p) for p in participants]
        )

    @unary
    async def CreateToken(
        self, request: rooms_pb2.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> rooms_pb2.JoinToken:
        token = self._rooms.token(
            request.room, request.identity, GRPC, name=request.name, ttl=request.ttl_seconds
        )
        return join_token(token)
