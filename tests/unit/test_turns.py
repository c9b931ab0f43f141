"""A coroutine working in long stretches lets others run (streams/turns.py)."""

from __future__ import annotations

import asyncio

from streams.turns import Turns


def test_a_spent_budget_gives_the_others_a_turn_and_an_unspent_one_does_not() -> None:
    async def main(every: float) -> list[str]:
        order: list[str] = []

        async def worker() -> None:
            turns = Turns(every)
            for _ in range(3):
                order.append("work")
                await turns.take()

        async def other() -> None:
            order.append("other")

        done = asyncio.gather(worker(), other())
        await done
        return order

    # Spent at once (every=0): "other" runs after the first piece of work, not after all.
    assert asyncio.run(main(0.0)) == ["work", "other", "work", "work"]
    # An hour's budget is never spent here: the work runs through without a turn.
    assert asyncio.run(main(3600.0)) == ["work", "work", "work", "other"]
