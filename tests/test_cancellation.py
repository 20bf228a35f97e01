"""Cancellation that a library turned into its own error is not lost, and a shutdown
does not wait for ever on a task that ignores being cancelled (the failure seen: a
replica's lease loop caught redis-py's error for its cancellation and went on, and
``standby serve`` never exited after SIGTERM)."""

from __future__ import annotations

import asyncio

import pytest

from standby import cancellation


async def loop_that_outlives_errors(
    started: asyncio.Event, *, guarded: bool, finish: asyncio.Event | None = None
) -> None:
    """The shape of the cluster's loops: errors are survived, the work goes on (until
    ``finish``, the test's own way to end a loop that eats its cancellations)."""
    while finish is None or not finish.is_set():
        try:
            try:
                started.set()
                await asyncio.sleep(3600)  # a Redis call, interrupted here
            except asyncio.CancelledError:
                raise ConnectionError("connection closed") from None  # what a library may do
        except (ConnectionError, OSError) as exc:
            if guarded:
                cancellation.raise_if_cancelled(exc)
        await asyncio.sleep(0)


async def test_a_converted_cancellation_is_raised_again() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(loop_that_outlives_errors(started, guarded=True))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_error_is_only_an_error_when_nobody_cancelled() -> None:
    cancellation.raise_if_cancelled(OSError())  # not cancelled: nothing happens


@pytest.mark.parametrize("guarded", [True, False], ids=["guarded loop", "loop eating its cancel"])
async def test_stop_is_bounded_whatever_the_task_does(guarded: bool) -> None:
    started, finish = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        loop_that_outlives_errors(started, guarded=guarded, finish=finish), name="lease"
    )
    await started.wait()
    left = await cancellation.stop([task], grace=0.2)
    assert left == ([] if guarded else ["lease"])
    assert task.done() == guarded
    if not guarded:  # the bad loop ate its cancellation: end it the test's own way
        finish.set()
        task.cancel()
        await task


async def test_stop_reads_what_stopped_tasks_raised() -> None:
    async def failing() -> None:
        raise ValueError("failed on its way out")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)  # it runs and fails
    assert await cancellation.stop([task]) == []
    assert isinstance(task.exception(), ValueError)
