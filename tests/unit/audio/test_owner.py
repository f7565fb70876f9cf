"""One voice at a time: FIFO order, the busy error, the wait bound, and waiters that leave."""

from __future__ import annotations

import asyncio

import pytest

from voicemoded.api.errors import Busy, Timeout
from voicemoded.audio.owner import AudioOwner


async def test_waiters_are_served_in_arrival_order() -> None:
    owner = AudioOwner()
    order: list[str] = []
    first = await owner.acquire("first")
    queued = []

    async def use(name: str) -> None:
        async with owner.hold(name):
            order.append(name)
            await asyncio.sleep(0)  # let the others try to jump the queue

    for name in ("a", "b", "c", "d"):
        queued.append(asyncio.create_task(use(name)))
        await asyncio.sleep(0)  # arrive in this order
    assert owner.queue_length == 4
    owner.release(first)
    await asyncio.gather(*queued)
    assert order == ["a", "b", "c", "d"]
    assert owner.holder is None


async def test_no_wait_gets_busy_naming_the_holder() -> None:
    owner = AudioOwner()
    async with owner.hold("claude-1"):
        with pytest.raises(Busy) as err:
            await owner.acquire("claude-2", wait=False)
    assert "claude-1" in str(err.value) and err.value.hint
    async with owner.hold("claude-2", wait=False) as holder:
        assert holder.who == "claude-2"


async def test_wait_bound_raises_timeout_and_leaves_the_queue() -> None:
    owner = AudioOwner()
    async with owner.hold("long call"):
        with pytest.raises(Timeout) as err:
            await owner.acquire("impatient", timeout=0.05)
        assert "long call" in str(err.value)
        assert owner.queue_length == 0


async def test_a_cancelled_waiter_does_not_block_the_next() -> None:
    owner = AudioOwner()
    first = await owner.acquire("first")
    gone = asyncio.create_task(owner.acquire("client that disconnects"))
    nxt = asyncio.create_task(owner.acquire("next"))
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    owner.release(first)
    holder = await asyncio.wait_for(nxt, 1)
    assert holder.who == "next"
