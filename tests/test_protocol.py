"""protocol/: every inbound message round-trips through both encodings, and any input decodes
to a message or raises one of the protocol's own errors with the right code."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol
from protocol import fields as f
from protocol.errors import BadFrame, BadMessage, ErrorCode, ProtocolError, TooLarge
from protocol.messages import AGENT, VISITOR, Message

SUBS = (protocol.JSON, protocol.MSGPACK)
ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)
texts = st.text(min_size=1, max_size=f.TEXT_MAX).filter(lambda s: 1 <= len(s) <= f.TEXT_MAX)


def value_for(field: f.Field) -> st.SearchStrategy[Any]:
    if field.kind == "id":
        return ids
    if field.kind in ("text", "str"):
        return st.text(min_size=max(field.min_len, 0), max_size=min(field.max_len, 200)).filter(
            lambda s: field.min_len <= len(s) <= field.max_len)
    if field.kind == "int":
        return st.integers(field.lo, field.hi)
    if field.kind == "bool":
        return st.booleans()
    if field.kind == "enum":
        return st.sampled_from(field.choices)
    resume = st.builds(f.Resume, ids, st.integers(0, 2**53))
    if field.kind == "resume":
        return resume
    return st.lists(resume, max_size=5).map(tuple)


def message_strategy(table: dict[str, type[Message]]) -> st.SearchStrategy[Message]:
    def build(cls: type[Message]) -> st.SearchStrategy[Message]:
        kwargs = {}
        for field in cls.FIELDS:
            strat = value_for(field)
            kwargs[field.name] = strat if field.required else st.none() | strat
        return st.builds(cls, **kwargs).filter(_valid_together)
    return st.one_of([build(c) for c in table.values()])


def _valid_together(msg: Message) -> bool:
    """Drops what a rule across fields refuses (a `send` with neither text nor attachment)."""
    values = {k: v for k, v in msg.to_map().items() if k != "type"}
    try:
        type(msg).check_together(values, None)
    except ProtocolError:
        return False
    return True


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(message_strategy(VISITOR), st.sampled_from(SUBS))
def test_every_valid_visitor_message_round_trips(msg: Message, sub: str) -> None:
    assert protocol.decode(protocol.encode(msg, sub), sub, VISITOR) == msg


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(message_strategy(AGENT), st.sampled_from(SUBS))
def test_every_valid_agent_message_round_trips(msg: Message, sub: str) -> None:
    assert protocol.decode(protocol.encode(msg, sub), sub, AGENT) == msg


@settings(max_examples=2000)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes) -> None:
    for table in (VISITOR, AGENT):
        try:
            protocol.decode(data, protocol.MSGPACK, table)
        except ProtocolError as exc:
            assert exc.code in (ErrorCode.BAD_FRAME, ErrorCode.BAD_MESSAGE, ErrorCode.TOO_LARGE)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20)
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(set(VISITOR) | set(AGENT))) | st.text(max_size=10)},
    optional={k: json_values for k in ("session", "cid", "text", "topic", "token", "resume",
                                        "on", "seq", "rating", "status", "capacity", "reason",
                                        "disposition", "to_agent", "to_topic", "lang", "comment")})


@settings(max_examples=2000)
@given(frame_like | json_values)
def test_arbitrary_json_raises_only_protocol_errors(obj: Any) -> None:
    for sub, data in ((protocol.JSON, json.dumps(obj)), (protocol.MSGPACK, msgpack.packb(obj))):
        for table in (VISITOR, AGENT):
            try:
                msg = protocol.decode(data, sub, table)
            except ProtocolError as exc:
                assert isinstance(exc, (BadFrame, BadMessage, TooLarge))
            else:
                assert isinstance(msg, Message)


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_protocol_errors(data: str) -> None:
    try:
        msg = protocol.decode(data, protocol.JSON, VISITOR)
    except ProtocolError as exc:
        assert exc.code in (ErrorCode.BAD_FRAME, ErrorCode.BAD_MESSAGE, ErrorCode.TOO_LARGE)
    else:  # only a JSON object naming a visitor message type can decode
        assert isinstance(msg, Message) and msg.TYPE in VISITOR
        assert json.loads(data)["type"] == msg.TYPE


def d(obj: Any, sub: str = protocol.JSON, table: dict[str, type[Message]] = VISITOR) -> Message:
    data = json.dumps(obj) if sub == protocol.JSON else msgpack.packb(obj)
    return protocol.decode(data, sub, table)


@pytest.mark.parametrize("data, code", [
    ("{", ErrorCode.BAD_FRAME),
    ("[1, 2]", ErrorCode.BAD_FRAME),
    ('"hello"', ErrorCode.BAD_FRAME),
    ("{}", ErrorCode.BAD_MESSAGE),
    ('{"type": 3}', ErrorCode.BAD_MESSAGE),
    ('{"type": "nope"}', ErrorCode.BAD_MESSAGE),
    ('{"type": "send", "session": "s", "cid": "c"}', ErrorCode.BAD_MESSAGE),
    ('{"type": "send", "session": "s", "cid": "c", "text": ""}', ErrorCode.BAD_MESSAGE),
    ('{"type": "send", "session": "s", "cid": "c", "text": "", "attachment": "a.b"}',
     ErrorCode.BAD_MESSAGE),
    ('{"type": "send", "session": "s", "cid": "c", "attachment": "a/../b"}', ErrorCode.BAD_MESSAGE),
    ('{"type": "send", "session": "s", "cid": "c", "text": 5}', ErrorCode.BAD_MESSAGE),
    ('{"type": "send", "session": "s/../x", "cid": "c", "text": "hi"}', ErrorCode.BAD_MESSAGE),
    ('{"type": "typing", "session": "s", "on": 1}', ErrorCode.BAD_MESSAGE),
    ('{"type": "rate", "session": "s", "rating": 6}', ErrorCode.BAD_MESSAGE),
    ('{"type": "rate", "session": "s", "rating": 4.0}', ErrorCode.BAD_MESSAGE),
    ('{"type": "close", "session": "s", "reason": "other"}', ErrorCode.BAD_MESSAGE),
    ('{"type": "read", "session": "s", "seq": NaN}', ErrorCode.BAD_FRAME),
])
def test_bad_frames_get_the_documented_code(data: str, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.decode(data, protocol.JSON, VISITOR)
    assert info.value.code == code


def test_text_length_counts_code_points() -> None:
    emoji = "🚓" * f.TEXT_MAX  # 4 bytes each in UTF-8, one code point each
    msg = d({"type": "send", "session": "s", "cid": "c", "text": emoji})
    assert len(msg.text) == f.TEXT_MAX  # type: ignore[attr-defined]
    with pytest.raises(TooLarge) as info:
        d({"type": "send", "session": "s", "cid": "c9", "text": emoji + "x"})
    assert info.value.code == ErrorCode.TOO_LARGE
    assert info.value.ref == "c9"


def test_wrong_frame_kind_for_the_subprotocol_is_a_bad_frame() -> None:
    with pytest.raises(BadFrame):
        protocol.decode(b'{"type":"ping"}', protocol.JSON, VISITOR)
    with pytest.raises(BadFrame):
        protocol.decode('{"type":"ping"}', protocol.MSGPACK, VISITOR)


def test_agents_and_visitors_have_their_own_types() -> None:
    with pytest.raises(BadMessage):
        d({"type": "accept", "session": "s"})
    with pytest.raises(BadMessage):
        d({"type": "start", "topic": "general"}, table=AGENT)
    assert d({"type": "accept", "session": "s"}, table=AGENT).TYPE == "accept"


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    assert d({"type": "ping", "future": 1}).TYPE == "ping"


def test_error_reference_is_the_cid_when_there_is_one() -> None:
    with pytest.raises(BadMessage) as info:
        d({"type": "send", "session": "s", "cid": "abc"})
    assert info.value.ref == "abc"


def test_server_frames_decode_back_for_clients() -> None:
    frame = protocol.outbound.msg("s1", 3, "agent", "Bonjour", 1700000000000, "c1")
    for sub in SUBS:
        assert protocol.decode_server(protocol.encode(frame, sub), sub) == frame


def test_codes_are_the_contract_strings() -> None:
    assert {c.value for c in ErrorCode} == {
        "bad_frame", "bad_message", "too_large", "rate_limited", "unauthorized", "forbidden",
        "not_found", "conflict", "unavailable",
        # photos (POST /api/uploads), additions of 2026-12
        "unsupported_type", "bad_image"}


def test_a_send_may_carry_a_photo_with_or_without_text() -> None:
    d = lambda obj: protocol.decode(json.dumps(obj), protocol.JSON, VISITOR)  # noqa: E731
    msg = d({"type": "send", "session": "s", "cid": "c", "attachment": "s.abc"})
    assert (msg.text, msg.attachment) == (None, "s.abc")  # type: ignore[attr-defined]
    msg = d({"type": "send", "session": "s", "cid": "c", "text": "vu", "attachment": "s.abc"})
    assert (msg.text, msg.attachment) == ("vu", "s.abc")  # type: ignore[attr-defined]
    with pytest.raises(ProtocolError) as info:
        d({"type": "send", "session": "s", "cid": "c", "attachment": 5})
    assert info.value.code == ErrorCode.BAD_MESSAGE and info.value.ref == "c"


def test_coverage_guided_fuzzing_finds_no_crash() -> None:
    """atheris (libFuzzer) on the decoder: 200,000 inputs, no exception but ProtocolError."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "fuzzing" / "fuzz_decoder.py"
    r = subprocess.run([sys.executable, str(script), "-runs=200000", "-max_len=2048", "-seed=8"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Done 200000 runs" in r.stderr


def test_the_states_table_in_the_docs_is_the_one_the_scripts_use() -> None:
    """docs/protocol.md prints the transition table the Lua scripts are given (states.py)."""
    from pathlib import Path

    from chatd.store.scripts import NAMES, _read, source
    from chatd.store.states import TRANSITIONS, lua_table, markdown_table

    docs = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    printed = docs.split("<!-- states: generated from chatd/store/states.py -->\n")[1]
    assert printed.split("\n<!-- /states -->")[0] == markdown_table()
    assert lua_table() in source("match") and lua_table() in source("decline")
    # a script carries only the helpers it calls (Redis runs all of its text at every call)
    assert "TRANSITIONS" not in source("append") and "local function put_route" not in \
        source("append") and "local function append_msg" in source("append")
    bodies = "".join(_read(f"{n}.lua") for n in ["lib", *NAMES])
    assert [e for e in TRANSITIONS if f"'{e}'" not in bodies] == []  # every event is used


def test_scripts_touch_only_the_keys_they_are_given() -> None:
    """No script builds a key name: every key comes through KEYS (keys.py, scripts.py)."""
    import re

    from chatd.store.scripts import FAMILIES, NAMES, _read

    for name in ["lib", *NAMES]:
        body = _read(f"{name}.lua")
        calls = re.findall(r"redis\.call\(\s*'(\w+)',\s*([^,)]+)", body)
        for command, first in calls:
            if command.upper() in ("TIME", "PUBLISH", "SPUBLISH"):
                continue
            if FAMILIES.get(name) == "composed" and re.fullmatch(r"KEYS\[\d+\]", first.strip()):
                continue  # a key it was given beside its steps' (the closed index, the audit)
            assert re.fullmatch(r"(S|R|V|P)\.\w+|C|key|queue|stream|queue_of\(\w+|R\.queue\[[^]]+\]",
                                first.strip()), f"{name}.lua: {command} on {first!r}"
