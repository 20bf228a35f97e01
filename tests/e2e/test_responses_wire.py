"""``POST /v1/responses`` end to end: the official ``openai`` SDK's ``client.responses``
against a real gateway, real simulated providers and the real journal.

Plain answers, instructions, function tools and their outputs, both streaming APIs of the
SDK, failover before the first token, continuation after a cut, ``response.failed`` when
nothing can continue, and ``previous_response_id`` chains read back from the journal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai.types.responses import FunctionToolParam

from standby.sim import Fault, SimProvider
from standby.sim.answers import ARGUMENTS, TOOL_CALL_ID
from standby.testing import running_gateway
from tests.conftest import two_target_plan

MODEL = "gpt-4o-mini"
WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture
async def client(primary: SimProvider, backup: SimProvider) -> AsyncIterator[openai.AsyncOpenAI]:
    async with running_gateway(two_target_plan(primary, backup)) as gw:
        sdk = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        yield sdk
        await sdk.close()


def sent_messages(sim: SimProvider) -> list[dict[str, Any]]:
    """The chat messages of the last request ``sim`` received."""
    messages: list[dict[str, Any]] = sim.requests[-1].body["messages"]
    return messages


async def streamed(client: openai.AsyncOpenAI, **kwargs: Any) -> list[Any]:
    """Every event of one ``responses.create(stream=True)``."""
    stream = await client.responses.create(model=MODEL, stream=True, **kwargs)
    events = [event async for event in stream]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1
    return events


def text_of(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


async def test_plain_answer(client: openai.AsyncOpenAI, primary: SimProvider) -> None:
    response = await client.responses.create(model=MODEL, input="Hello there")
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == MODEL
    assert response.output_text == primary.expected_text()
    assert response.usage is not None and response.usage.output_tokens > 0
    assert response.usage.total_tokens == (
        response.usage.input_tokens + response.usage.output_tokens
    )
    assert sent_messages(primary) == [{"role": "user", "content": "Hello there"}]


async def test_instructions_come_first(client: openai.AsyncOpenAI, primary: SimProvider) -> None:
    response = await client.responses.create(
        model=MODEL,
        instructions="Answer briefly.",
        max_output_tokens=64,
        temperature=0.3,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
    )
    assert response.instructions == "Answer briefly." and response.max_output_tokens == 64
    assert sent_messages(primary) == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Hi"},
    ]
    body = primary.requests[-1].body
    assert (body["max_tokens"], body["temperature"]) == (64, 0.3)


async def test_function_call_and_its_output(
    client: openai.AsyncOpenAI, primary: SimProvider
) -> None:
    first = await client.responses.create(model=MODEL, input="Weather in Paris?", tools=[WEATHER])
    assert primary.requests[-1].body["tools"][0]["function"]["name"] == "get_weather"
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        (TOOL_CALL_ID, "get_weather", ARGUMENTS)
    ]
    follow_up: list[Any] = [  # the output items go back as input, as OpenAI's guide does
        {"role": "user", "content": "Weather in Paris?"},
        *first.output,
        {"type": "function_call_output", "call_id": TOOL_CALL_ID, "output": "18C"},
    ]
    second = await client.responses.create(model=MODEL, tools=[WEATHER], input=follow_up)
    assert second.output_text == primary.expected_text()
    assert sent_messages(primary)[1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": TOOL_CALL_ID,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ARGUMENTS},
                }
            ],
        },
        {"role": "tool", "content": "18C", "tool_call_id": TOOL_CALL_ID},
    ]


async def test_stream_events(client: openai.AsyncOpenAI, primary: SimProvider) -> None:
    events = await streamed(client, input="Hello", instructions="Be kind.")
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert text_of(events) == primary.expected_text()
    final = events[-1].response
    assert final.output_text == primary.expected_text() and final.status == "completed"
    assert final.usage is not None and final.usage.output_tokens > 0


async def test_stream_helper_final_response(
    client: openai.AsyncOpenAI, primary: SimProvider
) -> None:
    async with client.responses.stream(model=MODEL, input="Hello") as stream:
        deltas = [
            event.delta async for event in stream if event.type == "response.output_text.delta"
        ]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == primary.expected_text()
    async with client.responses.stream(model=MODEL, input="Weather?", tools=[WEATHER]) as stream:
        final = await stream.get_final_response()
    call = final.output[0]
    assert call.type == "function_call" and call.arguments == ARGUMENTS
    assert call.parsed_arguments == {"city": "Paris", "unit": "celsius"}  # strict tool


async def test_failover_before_the_answer(
    client: openai.AsyncOpenAI, primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("error", status=503))
    raw = await client.responses.with_raw_response.create(model=MODEL, input="Hello")
    assert raw.headers["x-standby-provider"] == "backup"
    assert raw.parse().output_text == backup.expected_text()
    events = await streamed(client, input="Hello")
    assert text_of(events) == backup.expected_text()
    assert events[-1].type == "response.completed"


async def test_cut_stream_is_continued(
    client: openai.AsyncOpenAI, primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("cut_stream", after=3))
    events = await streamed(client, input="Hello")
    assert text_of(events) == primary.expected_text()
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == primary.expected_text()
    assert len(backup.requests) == 1  # the continuation


async def test_nothing_can_continue_ends_with_response_failed(
    client: openai.AsyncOpenAI, primary: SimProvider, backup: SimProvider
) -> None:
    primary.set_fault(Fault("cut_stream", after=3))
    backup.set_fault(Fault("error", status=503))
    events = await streamed(client, input="Hello")
    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None
    assert "interrupted" in failed.error.message
    assert text_of(events) == " ".join(primary.expected_text().split()[:3])


async def test_previous_response_id_chain(client: openai.AsyncOpenAI, primary: SimProvider) -> None:
    answer = primary.expected_text()
    first = await client.responses.create(
        model=MODEL, input="First question", instructions="Old rules."
    )
    second_events = await streamed(client, input="Second question", previous_response_id=first.id)
    second = second_events[-1].response
    assert second.previous_response_id == first.id
    third = await client.responses.create(
        model=MODEL,
        input="Third question",
        instructions="New rules.",
        previous_response_id=second.id,
    )
    assert third.output_text == answer
    assert sent_messages(primary) == [
        {"role": "system", "content": "New rules."},  # instructions are not carried over
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "Second question"},
        {"role": "assistant", "content": answer},  # journaled from the stream
        {"role": "user", "content": "Third question"},
    ]


async def test_function_output_after_previous_response_id(
    client: openai.AsyncOpenAI, primary: SimProvider
) -> None:
    first = await client.responses.create(model=MODEL, input="Weather?", tools=[WEATHER])
    second = await client.responses.create(
        model=MODEL,
        tools=[WEATHER],
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": TOOL_CALL_ID, "output": "18C"}],
    )
    assert second.output_text == primary.expected_text()
    assert [m["role"] for m in sent_messages(primary)] == ["user", "assistant", "tool"]
    assert sent_messages(primary)[1]["tool_calls"][0]["id"] == TOOL_CALL_ID


async def test_unknown_previous_response_is_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.responses.create(model=MODEL, input="Hi", previous_response_id="resp_nobody")
    assert caught.value.code == "previous_response_not_found"


async def test_not_stored_is_not_found(client: openai.AsyncOpenAI) -> None:
    hidden = await client.responses.create(model=MODEL, input="Hi", store=False)
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model=MODEL, input="Again", previous_response_id=hidden.id)


async def test_bad_requests_are_openai_400s(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODEL, input="Hi", tools=[{"type": "web_search"}])
    assert caught.value.param == "tools[0].type"
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODEL, input=[])
    assert caught.value.param == "input"


async def test_without_journal_previous_response_id_is_400(
    primary: SimProvider, backup: SimProvider
) -> None:
    async with running_gateway(two_target_plan(primary, backup), data_dir=None) as gw:
        sdk = openai.AsyncOpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        first = await sdk.responses.create(model=MODEL, input="Hi")
        assert first.output_text == primary.expected_text()
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.responses.create(model=MODEL, input="Again", previous_response_id=first.id)
        await sdk.close()
    assert "journal" in caught.value.message
