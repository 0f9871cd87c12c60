"""The WebSocket endpoints: handshake rules, hello, errors that keep the connection open, and
the closes that do not (docs/protocol.md, "Connections")."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from conftest import make_agent, make_visitor
from harness import Chatd, Client

pytestmark = pytest.mark.asyncio


async def handshake_status(url: str, **kw: object) -> int:
    try:
        ws = await websockets.connect(url, open_timeout=5, **kw)  # type: ignore[arg-type]
    except websockets.InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


async def test_a_handshake_without_a_chatd_subprotocol_is_refused(server: Chatd) -> None:
    assert await handshake_status(server.ws + "/ws/visitor") == 403
    assert await handshake_status(server.ws + "/ws/visitor", subprotocols=["chat"]) == 403
    assert await handshake_status(server.ws + "/ws/visitor", subprotocols=["chatd.v1.json"]) == 101


async def test_the_chosen_subprotocol_is_the_one_offered(server: Chatd) -> None:
    for sub in ("chatd.v1.json", "chatd.v1.msgpack"):
        ws = await websockets.connect(server.ws + "/ws/visitor", subprotocols=["x", sub])
        assert ws.subprotocol == sub
        await ws.close()


async def test_visitor_origin_must_be_allowed(server: Chatd) -> None:
    url = server.ws + "/ws/visitor"
    sub = {"subprotocols": ["chatd.v1.json"]}
    assert await handshake_status(url, origin="https://evil.example", **sub) == 403
    assert await handshake_status(url, origin=server.http, **sub) == 101  # own origin
    assert await handshake_status(url, **sub) == 101  # native client: no Origin


async def test_allowed_origins_setting_lists_the_host_sites(chatd_factory) -> None:
    server = await chatd_factory(env={"CHATD_ALLOWED_ORIGINS": "https://www.gendarmerie.interieur.gouv.fr"})
    url = server.ws + "/ws/visitor"
    sub = {"subprotocols": ["chatd.v1.json"]}
    assert await handshake_status(url, origin="https://www.gendarmerie.interieur.gouv.fr", **sub) == 101
    assert await handshake_status(url, origin="https://evil.example", **sub) == 403


async def test_agent_socket_only_from_the_servers_own_origin(server: Chatd) -> None:
    url = server.ws + "/ws/agent"
    sub = {"subprotocols": ["chatd.v1.json"]}
    assert await handshake_status(url, origin="https://evil.example", **sub) == 403
    assert await handshake_status(url, origin=server.http, **sub) == 101


async def test_hello_must_come_first(server: Chatd) -> None:
    client = await Client.connect(server.ws, "visitor")
    await client.send({"type": "ping"})
    err = await client.recv("error")
    assert err["code"] == "unauthorized"
    assert (await client.closed()).code == 1008


async def test_no_hello_in_time_closes_with_policy(chatd_factory) -> None:
    server = await chatd_factory(env={"CHATD_HELLO_TIMEOUT": "0.5"})
    client = await Client.connect(server.ws, "visitor")
    err = await client.recv("error", timeout=3)
    assert err["code"] == "unauthorized"
    assert (await client.closed()).code == 1008


@pytest.mark.parametrize("sub", ["chatd.v1.json", "chatd.v1.msgpack"])
async def test_welcome_gives_a_token_and_ping_gets_pong(server: Chatd, sub: str) -> None:
    visitor = await make_visitor(server, sub)
    assert visitor.welcome["token"].startswith("v1.")
    assert visitor.welcome["sessions"] == []
    assert isinstance(visitor.welcome["server_time"], int)
    await visitor.send({"type": "ping"})
    await visitor.recv("pong")


async def test_bad_frames_get_errors_and_the_connection_stays_open(server: Chatd) -> None:
    visitor = await make_visitor(server, "chatd.v1.json")
    await visitor.send_raw("{not json")
    assert (await visitor.recv("error"))["code"] == "bad_frame"
    await visitor.send_raw(b"\x81\xa4type")  # binary on the JSON subprotocol
    assert (await visitor.recv("error"))["code"] == "bad_frame"
    await visitor.send({"type": "teleport"})
    err = await visitor.recv("error")
    assert err["code"] == "bad_message" and err["ref"] == "teleport"
    await visitor.send({"type": "send", "session": "abc", "cid": "c1"})
    err = await visitor.recv("error")
    assert err["code"] == "bad_message" and err["ref"] == "c1"
    await visitor.send({"type": "send", "session": "abc", "cid": "c2", "text": "x" * 4001})
    err = await visitor.recv("error")
    assert err["code"] == "too_large" and err["ref"] == "c2"
    await visitor.send({"type": "ping"})
    await visitor.recv("pong")


async def test_a_second_hello_is_refused(server: Chatd) -> None:
    visitor = await make_visitor(server)
    await visitor.send({"type": "hello"})
    assert (await visitor.recv("error"))["code"] == "bad_message"


async def test_an_oversized_frame_closes_with_1009(chatd_factory) -> None:
    server = await chatd_factory(env={"CHATD_MAX_FRAME": "4096"})
    visitor = await make_visitor(server, "chatd.v1.json")
    await visitor.send_raw(json.dumps({"type": "ping", "pad": "x" * 5000}))
    assert (await visitor.closed()).code == 1009


async def test_a_stream_of_garbage_closes_with_policy(server: Chatd) -> None:
    visitor = await make_visitor(server, "chatd.v1.json")
    for _ in range(25):
        await visitor.send_raw("garbage")
    assert (await visitor.closed()).code == 1008


async def test_agent_without_credentials_is_refused(server: Chatd) -> None:
    client = await Client.connect(server.ws, "agent")
    await client.send({"type": "hello"})
    assert (await client.recv("error"))["code"] == "unauthorized"
    assert (await client.closed()).code == 1008
    client = await Client.connect(server.ws, "agent")
    await client.send({"type": "hello", "token": "forged"})
    assert (await client.recv("error"))["code"] == "unauthorized"
    assert (await client.closed()).code == 1008


async def test_agent_cookie_counts_only_on_a_same_origin_handshake(server: Chatd, redis_server) -> None:
    agent = await make_agent(server, redis_server.url)
    cookie = {"Cookie": f"chatd_session={agent.token}"}
    # with the cookie and our own Origin: hello needs no token
    c = await Client.connect(server.ws, "agent", headers=cookie, origin=server.http)
    await c.send({"type": "hello"})
    assert (await c.recv("welcome"))["agent"]["login"] == agent.login
    # the cookie alone, with no Origin (not a browser): refused
    c = await Client.connect(server.ws, "agent", headers=cookie)
    await c.send({"type": "hello"})
    assert (await c.recv("error"))["code"] == "unauthorized"


async def test_a_forged_visitor_token_gets_a_fresh_identity(server: Chatd) -> None:
    first = await make_visitor(server)
    forged = first.token[:-2] + ("AA" if not first.token.endswith("AA") else "BB")
    client = await Client.connect(server.ws, "visitor")
    await client.send({"type": "hello", "token": forged})
    assert (await client.recv("error"))["code"] == "unauthorized"
    welcome = await client.recv("welcome")
    assert welcome["token"] != first.token


async def test_frames_over_the_rate_are_refused_then_the_flood_is_closed(chatd_factory) -> None:
    server = await chatd_factory(env={"CHATD_FRAME_RATE": "5", "CHATD_FRAME_BURST": "5"})
    visitor = await make_visitor(server)
    for _ in range(80):
        await visitor.send({"type": "ping"})
    closed = await visitor.closed(timeout=5)  # a flood that goes on is ended
    assert closed.code == 1008
    codes = [f["code"] for f in visitor.frames if f["type"] == "error"]
    pongs = [f for f in visitor.frames if f["type"] == "pong"]
    assert codes and set(codes) == {"rate_limited"}  # refused one by one first
    assert 4 <= len(pongs) < 20  # the burst (less the hello), and what the rate allowed since
    other = await make_visitor(server)  # others are unaffected
    await other.send({"type": "ping"})
    await other.recv("pong")


async def test_healthz_readyz_metrics(server: Chatd) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        assert (await http.get(server.http + "/healthz")).status_code == 200
        assert (await http.get(server.http + "/readyz")).status_code == 200
        r = await http.get(server.http + "/metrics")
        assert r.status_code == 200 and "chatd_connections" in r.text
        topics = (await http.get(server.http + "/api/topics")).json()
        assert any(t["id"] == "general" for t in topics)
        assert all(set(t) == {"id", "label", "priority", "weight", "retention_days"} for t in topics)
        assert {t["id"]: t["weight"] for t in topics}["violence"] == 2  # slots a chat of it takes
        # every language the widget speaks (docs/protocol.md, "HTTP")
        assert all(set(t["label"]) == {"fr", "en", "es", "de", "it", "fr-falc"} for t in topics)


async def test_concurrent_clients_do_not_block_each_other(server: Chatd) -> None:
    visitors = await asyncio.gather(*[make_visitor(server) for _ in range(20)])
    for v in visitors:
        await v.send({"type": "ping"})
    for v in visitors:
        await v.recv("pong")


async def test_a_fragmented_message_is_put_back_together(server: Chatd) -> None:
    visitor = await make_visitor(server, "chatd.v1.json")
    text = json.dumps({"type": "ping", "pad": "é" * 300})
    await visitor.ws.send([text[:100], text[100:400], text[400:]])  # three frames, one message
    await visitor.recv("pong")


async def test_a_text_frame_that_is_not_utf8_closes_with_1007(server: Chatd) -> None:
    visitor = await make_visitor(server, "chatd.v1.json")
    await visitor.ws.send(b'{"type": "ping", "x": "\xff\xfe"}', text=True)
    assert (await visitor.closed()).code == 1007


async def test_a_malformed_upgrade_is_refused_with_400(server: Chatd) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /ws/visitor HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 b"Sec-WebSocket-Protocol: chatd.v1.json\r\n\r\n")  # no Sec-WebSocket-Key
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.startswith(b"HTTP/1.1 400 ")
    await asyncio.wait_for(reader.read(), 5)  # to the end: the server hangs up
    writer.close()


async def test_stopping_a_process_closes_its_sockets_with_1012(chatd_factory) -> None:
    server = await chatd_factory()
    visitor = await make_visitor(server)
    other = await make_visitor(server, "chatd.v1.json")
    await server.stop()
    assert (await visitor.closed()).code == 1012
    assert (await other.closed()).code == 1012


async def test_a_silent_connection_gets_keepalive_pings(chatd_factory) -> None:
    """Read at the frame level (the websockets client answers pings without telling anyone)."""
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.uri import parse_uri

    server = await chatd_factory(env={"CHATD_IDLE_TIMEOUT": "3", "CHATD_TICK": "0.2"})  # ping at 1 s
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    client = ClientProtocol(parse_uri(f"{server.ws}/ws/visitor"),
                            subprotocols=["chatd.v1.json"])  # type: ignore[list-item]
    client.send_request(client.connect())
    writer.write(b"".join(client.data_to_send()))
    while client.handshake_exc is None and not client.events_received():  # the 101
        client.receive_data(await asyncio.wait_for(reader.read(65536), 3))
    assert client.handshake_exc is None
    client.send_text(json.dumps({"type": "hello"}).encode())
    writer.write(b"".join(client.data_to_send()))
    loop = asyncio.get_running_loop()
    started = loop.time()
    pinged = None
    while pinged is None and loop.time() - started < 2.9:  # before the idle close at 3 s
        try:
            data = await asyncio.wait_for(reader.read(65536), 2.9 - (loop.time() - started))
        except asyncio.TimeoutError:
            break
        assert data, "closed before any ping"
        client.receive_data(data)
        for event in client.events_received():
            if isinstance(event, Frame) and event.opcode is Opcode.PING:
                pinged = loop.time() - started
        writer.write(b"".join(client.data_to_send()))  # the pong
    assert pinged is not None, "no keepalive ping within 2.9 s of silence"
    assert pinged >= 0.9  # only once the connection has been silent a while
    writer.close()
