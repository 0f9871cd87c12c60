"""`chatd serve` and the admin commands, as an operator uses them: embedded Redis, workers,
signals, clear one-line errors, accounts, export and purge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from chatd.store import Keys
from conftest import PASSWORD, make_agent, make_visitor, start_chat
from harness import ROOT, Chatd, eventually, run, wait_for_exit

pytestmark = pytest.mark.asyncio


async def chatd_cli(*args: str, data_dir: Path | None = None, stdin: str | None = None,
                    env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = [sys.executable, "-m", "chatd", *args]
    if data_dir is not None:
        full += ["--data-dir", str(data_dir)]
    return await run(full, stdin=stdin, env={**os.environ, **(env or {})})


def children(pid: int, pattern: str | None = None) -> list[int]:
    """The live child processes of ``pid`` (whose command line matches ``pattern``)."""
    out = subprocess.run(["pgrep", "-P", str(pid), *(["-f", pattern] if pattern else [])],
                         capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def redis_children(pid: int) -> list[int]:
    return children(pid, "redis-server")


def embedded(tmp_path: Path, **kw: object) -> Chatd:
    return Chatd(redis_url=None, prefix="chatd", data_dir=str(tmp_path / "data"), **kw)  # type: ignore[arg-type]


async def test_serve_on_embedded_redis_is_ready_fast_and_stops_cleanly(tmp_path: Path) -> None:
    server = embedded(tmp_path)
    started = time.monotonic()
    await server.start()
    assert time.monotonic() - started < 5
    redis_pids = redis_children(server.proc.pid)  # type: ignore[union-attr]
    assert len(redis_pids) == 1
    data = tmp_path / "data"
    assert (data / "redis.sock").exists()
    assert oct((data / "redis.pass").stat().st_mode & 0o777) == "0o600"
    assert list(data.glob("appendonly*")), "AOF is on"
    server.proc.send_signal(signal.SIGINT)  # type: ignore[union-attr]   Ctrl-C
    assert await wait_for_exit(server.proc, 15)  # type: ignore[arg-type]
    assert server.proc.returncode == 0  # type: ignore[union-attr]
    assert not any(Path(f"/proc/{p}").exists() for p in redis_pids), "redis-server stopped too"
    assert "chatd stopped" in server.output()


async def test_embedded_redis_listens_on_its_socket_only_with_a_password(tmp_path: Path) -> None:
    server = await embedded(tmp_path).start()
    try:
        conf = (tmp_path / "data" / "redis.conf").read_text()
        assert "port 0" in conf and "requirepass" in conf
        import redis

        anon = redis.Redis(unix_socket_path=str(tmp_path / "data" / "redis.sock"))
        with pytest.raises(redis.AuthenticationError):
            anon.ping()
    finally:
        await server.stop()


async def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    first = await embedded(tmp_path).start()
    try:
        second = embedded(tmp_path)
        await second.start(wait_ready=False)
        assert await wait_for_exit(second.proc, 15)  # type: ignore[arg-type]
        assert second.proc.returncode == 1  # type: ignore[union-attr]
        out = second.output().strip().splitlines()
        assert len(out) == 1 and "another chatd" in out[0] and "already serves" in out[0]
    finally:
        await first.stop()


async def test_a_stale_socket_from_a_crash_is_cleaned_up(tmp_path: Path) -> None:
    server = await embedded(tmp_path).start()
    await server.kill()  # supervisor and workers die; redis follows (parent-death signal)
    sock = tmp_path / "data" / "redis.sock"
    assert await eventually(lambda: not redis_children_any(tmp_path), 10)
    sock.touch()  # whatever the crash left behind
    again = await embedded(tmp_path).start()
    await again.stop()


async def test_a_sigkilled_supervisor_takes_its_workers_and_redis_along(tmp_path: Path) -> None:
    """What the OOM killer does: SIGKILL of `chatd serve` alone. Its workers and its Redis go
    within 2 s (no process keeps the port or the data dir), clients see their connection
    drop, and the same command starts again at once."""
    server = await embedded(tmp_path, workers=2).start()
    visitor = await make_visitor(server)
    supervisor = server.proc.pid  # type: ignore[union-attr]
    workers = [p for p in children(supervisor) if p not in redis_children(supervisor)]
    (redis_pid,) = redis_children(supervisor)
    assert len(workers) == 2
    os.kill(supervisor, signal.SIGKILL)
    assert await wait_for_exit(server.proc, 2)  # type: ignore[arg-type]

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
    assert await eventually(lambda: all(gone(p) for p in [*workers, redis_pid]), 2), \
        "a worker or the embedded Redis outlived its supervisor"
    await visitor.closed(timeout=2)
    again = await embedded(tmp_path, port=server.port).start()  # no stale lock, no busy port
    try:
        await make_visitor(again)
    finally:
        await again.stop()


def redis_children_any(tmp_path: Path) -> bool:
    out = subprocess.run(["pgrep", "-f", f"{tmp_path}/data/redis.conf"], capture_output=True, text=True)
    return bool(out.stdout.strip())


async def test_transcripts_and_open_sessions_survive_a_restart(tmp_path: Path) -> None:
    server = await embedded(tmp_path, env={"CHATD_TICK": "0.2"}).start()
    r = await chatd_cli("agents", "add", "martin", "--name", "Gendarme Martin", "--password-stdin",
                  data_dir=tmp_path / "data", stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    agent = await make_agent(server, "", login="martin", create=False)
    visitor = await make_visitor(server)
    sid = await start_chat(visitor, text="premier message")
    await agent.recv("offer", session=sid)
    await agent.send({"type": "accept", "session": sid})
    await agent.recv("assigned", session=sid)
    await agent.send({"type": "send", "session": sid, "cid": "a1", "text": "bien reçu"})
    await agent.recv("ack", cid="a1")
    await server.stop()  # Redis stops with it, AOF on disk
    again = await embedded(tmp_path, env={"CHATD_TICK": "0.2"}, port=server.port).start()
    try:
        back = await make_visitor(again, token=visitor.token, resume={"session": sid, "after": 0})
        assert back.welcome["sessions"][0]["state"] == "active"
        await back.recv("msg", cid="a1")
        assert [f["text"] for f in back.frames if f["type"] == "msg"] == ["premier message", "bien reçu"]
    finally:
        await again.stop()


async def test_a_dead_embedded_redis_is_restarted_from_its_aof(tmp_path: Path) -> None:
    server = await embedded(tmp_path, env={"CHATD_TICK": "0.2"}).start()
    try:
        visitor = await make_visitor(server)
        sid = await start_chat(visitor, text="avant")
        (pid,) = redis_children(server.proc.pid)  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        assert await eventually(lambda: redis_children(server.proc.pid) not in ([], [pid]), 10)  # type: ignore[union-attr]
        assert await eventually(server.ready, 10)
        assert "embedded Redis died" in server.output()
        back = await make_visitor(server, token=visitor.token, resume={"session": sid, "after": 0})
        assert (await back.recv("msg", session=sid))["text"] == "avant"
    finally:
        await server.stop()


async def test_workers_share_one_embedded_redis(tmp_path: Path) -> None:
    server = await embedded(tmp_path, workers=3).start()
    try:
        assert len(children(server.proc.pid)) == 4  # type: ignore[union-attr]  # 3 workers + redis
        visitors = [await make_visitor(server) for _ in range(6)]
        assert len({v.welcome["token"] for v in visitors}) == 6
    finally:
        await server.stop()


async def test_a_killed_worker_is_replaced(chatd_factory) -> None:
    server = await chatd_factory(workers=2)
    workers = children(server.proc.pid)  # type: ignore[union-attr]
    os.kill(workers[0], signal.SIGKILL)
    pid = server.proc.pid  # type: ignore[union-attr]
    assert await eventually(lambda: len(children(pid)) == 2 and workers[0] not in children(pid), 10)
    assert "exited (signal 9); restarting it" in server.output()
    assert await eventually(server.ready, 10)


@pytest.mark.parametrize("args, env, message", [
    (["--port", "http"], {}, "--port: expected a whole number from 0 to 65535, got 'http'"),
    (["--workers", "0"], {}, "--workers: expected a whole number from 1 to 64, got '0'"),
    (["--redis-url", "http://x"], {}, "--redis-url: expected redis://, rediss://, unix://, redis+sentinel://"),
    (["--redis-url", "redis+sentinel://u:s3cret@h:26379"], {},
     "--redis-url: name the Sentinel service after the hosts: redis+sentinel://host:26379/SERVICE, "
     "got 'redis+sentinel://u:***@h:26379'"),
    (["--redis-url", "redis+sentinel://h:x/mymaster"], {}, "--redis-url: expected host:port, got 'h:x'"),
    (["--redis-url", "redis+cluster://h:7000/2"], {}, "--redis-url: a cluster URL has no path"),
    (["--redis-url", "redis+sentinel://h:1/m?colour=blue"], {}, "--redis-url: unknown option 'colour'"),
    ([], {"CHATD_OFFER_TIMEOUT": "thirty"}, "CHATD_OFFER_TIMEOUT: expected a number of seconds > 0, got 'thirty'"),
    ([], {"CHATD_ALLOWED_ORIGINS": "gendarmerie.fr"}, "CHATD_ALLOWED_ORIGINS: expected an origin"),
    ([], {"CHATD_SECRET": "short"}, "CHATD_SECRET: must be at least 16 characters long"),
    ([], {"CHATD_ASSIGN_MODE": "random"}, "CHATD_ASSIGN_MODE: expected one of offer, direct"),
    ([], {"CHATD_TOPICS_FILE": "/nonexistent.toml"}, "CHATD_TOPICS_FILE: cannot read /nonexistent.toml"),
    ([], {"CHATD_CANNED_FILE": "/nonexistent.toml"}, "CHATD_CANNED_FILE: cannot read /nonexistent.toml"),
    ([], {"CHATD_CANNED_FILE": str(ROOT / "pyproject.toml")}, "has no [[answer]] tables"),
    ([], {"CHATD_UPLOAD_MAX_MB": "ten"}, "CHATD_UPLOAD_MAX_MB: expected a number > 0, got 'ten'"),
    ([], {"CHATD_UPLOADS_PER_SESSION": "0"}, "CHATD_UPLOADS_PER_SESSION: expected a whole number"),
    ([], {"CHATD_UPLOAD_STORE": "ftp"}, "CHATD_UPLOAD_STORE: expected one of dir, s3, got 'ftp'"),
    ([], {"CHATD_UPLOAD_STORE": "s3"}, "CHATD_UPLOAD_STORE=s3 needs CHATD_S3_BUCKET"),
    ([], {"CHATD_S3_BUCKET": "Photos!"}, "CHATD_S3_BUCKET: expected an S3 bucket name"),
    ([], {"CHATD_S3_ENDPOINT": "s3.example.fr"}, "CHATD_S3_ENDPOINT: expected a URL"),
    ([], {"CHATD_IMAGE_POOL": "gpu"}, "CHATD_IMAGE_POOL: expected one of process, thread"),
])
async def test_bad_settings_exit_with_one_clear_line(args: list[str], env: dict[str, str], message: str) -> None:
    r = await chatd_cli("serve", *args, env=env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("chatd: ") and message in lines[0]


async def test_a_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = await chatd_cli("serve", "--port", str(port), data_dir=tmp_path / "d")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == f"chatd: cannot listen on 127.0.0.1:{port}: Address already in use"


async def test_agents_add_list_disable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = await chatd_cli("agents", "add", "dupont", "--name", "Adjudant Dupont", "--role", "supervisor",
                  "--lang", "fr,en", "--topics", "violence,general", "--capacity", "2", data_dir=data)
    assert r.returncode == 0, r.stderr
    assert "password: " in r.stdout  # generated, printed once
    r = await chatd_cli("agents", "add", "dupont", "--name", "Again", data_dir=data)
    assert r.returncode == 1 and "already exists" in r.stderr
    r = await chatd_cli("agents", "add", "Bad Login", "--name", "X", data_dir=data)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    r = await chatd_cli("agents", "list", data_dir=data)
    assert r.stdout.split("\t")[:6] == ["dupont", "Adjudant Dupont", "supervisor", "fr,en",
                                        "violence,general", "2"]
    r = await chatd_cli("agents", "disable", "dupont", data_dir=data)
    assert r.returncode == 0
    assert "disabled" in (await chatd_cli("agents", "list", data_dir=data)).stdout


async def test_login_logout_and_disable_close_sockets(chatd_factory, redis_server) -> None:
    server = await chatd_factory()
    agent = await make_agent(server, redis_server.url)
    async with httpx.AsyncClient() as http:
        bad = await http.post(server.http + "/api/login", json={"login": agent.login, "password": "nope"})
        assert bad.status_code == 401
        r = await http.post(server.http + "/api/login", json={"login": agent.login, "password": PASSWORD})
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        token = r.json()["token"]
        assert r.json()["agent"]["login"] == agent.login
        # cross-site login attempt
        x = await http.post(server.http + "/api/login", headers={"Origin": "https://evil.example"},
                            json={"login": agent.login, "password": PASSWORD})
        assert x.status_code == 403
        # logging out one token closes that agent's sockets
        out = await http.post(server.http + "/api/logout", headers={"Authorization": f"Bearer {agent.token}"})
        assert out.status_code == 200
    assert (await agent.closed()).code == 1008
    from harness import Client

    again = await Client.connect(server.ws, "agent")
    await again.send({"type": "hello", "token": agent.token})
    assert (await again.recv("error"))["code"] == "unauthorized"
    fresh = await Client.connect(server.ws, "agent")
    await fresh.send({"type": "hello", "token": token})
    await fresh.recv("welcome")


async def test_stats_are_for_supervisors(chatd_factory, redis_server) -> None:
    server = await chatd_factory()
    agent = await make_agent(server, redis_server.url)
    sup = await make_agent(server, redis_server.url, role="supervisor", available=False)
    visitor = await make_visitor(server)
    await start_chat(visitor, "road")
    async with httpx.AsyncClient() as http:
        assert (await http.get(server.http + "/api/stats")).status_code == 401
        r = await http.get(server.http + "/api/stats", headers={"Authorization": f"Bearer {agent.token}"})
        assert r.status_code == 403
        r = await http.get(server.http + "/api/stats", headers={"Authorization": f"Bearer {sup.token}"})
        assert r.status_code == 200
        stats = r.json()
        assert set(stats) >= {"queues", "longest_wait_s", "agents_by_status", "active_sessions"}


async def test_export_and_purge(chatd_factory, redis_server, prefix: str) -> None:
    server = await chatd_factory()
    env = {"CHATD_KEY_PREFIX": prefix}
    from conftest import connect_pair

    visitor, agent, sid = await connect_pair(server, redis_server.url)
    await agent.send({"type": "send", "session": sid, "cid": "a1", "text": "Déposez plainte en ligne"})
    await agent.send({"type": "note", "session": sid, "cid": "n1", "text": "orienté pré-plainte"})
    await agent.send({"type": "close", "session": sid, "disposition": "redirected_pre_plainte"})
    await visitor.recv("closed")
    r = await chatd_cli("export", "--redis-url", redis_server.url, env=env)
    assert r.returncode == 0, r.stderr
    (line,) = r.stdout.splitlines()
    t = json.loads(line)
    assert t["session"] == sid and t["disposition"] == "redirected_pre_plainte"
    assert [m["text"] for m in t["messages"]] == ["Bonjour", "Déposez plainte en ligne"]
    assert t["notes"][0]["text"] == "orienté pré-plainte"
    assert "visitor" not in t and "ip" not in line
    assert (await chatd_cli("export", "--since", "2999-01-01", "--redis-url", redis_server.url, env=env)).stdout == ""
    r = await chatd_cli("export", "--since", "yesterday", "--redis-url", redis_server.url, env=env)
    assert r.returncode == 1 and "--since" in r.stderr
    r = await chatd_cli("purge", "--older-than", "0", "--redis-url", redis_server.url, env=env)
    assert r.returncode == 0 and "purged 1" in r.stdout
    assert (await chatd_cli("export", "--redis-url", redis_server.url, env=env)).stdout == ""


async def test_closed_sessions_expire_after_retention(chatd_factory, redis_server, rds, prefix: str) -> None:
    server = await chatd_factory(env={"CHATD_RETENTION_DAYS": "1"})
    from conftest import connect_pair

    visitor, agent, sid = await connect_pair(server, redis_server.url)
    await visitor.send({"type": "close", "session": sid})
    await agent.recv("closed")
    ttl = await rds.ttl(f"{prefix}:s:{{{sid}}}")
    assert 86_000 < ttl <= 86_400
    assert 86_000 < await rds.ttl(f"{prefix}:s:{{{sid}}}:m") <= 86_400


async def test_a_topic_can_keep_its_chats_for_less_time(chatd_factory, redis_server, rds, prefix: str,
                                                       tmp_path: Path) -> None:
    topics = tmp_path / "topics.toml"
    topics.write_text('[[topic]]\nid = "violence"\nlabel_fr = "Violences"\npriority = 30\n'
                      'retention_days = 0.5\n[[topic]]\nid = "general"\nlabel_fr = "Général"\n')
    server = await chatd_factory(env={"CHATD_TOPICS_FILE": str(topics), "CHATD_RETENTION_DAYS": "30"})
    from conftest import make_agent

    agent = await make_agent(server, redis_server.url, capacity=4)
    ttls = {}
    for topic in ("violence", "general"):
        v = await make_visitor(server)
        sid = await start_chat(v, topic)
        await agent.recv("offer", session=sid)
        await v.send({"type": "close", "session": sid})
        await v.recv("closed", session=sid)
        ttls[topic] = await rds.ttl(f"{prefix}:s:{{{sid}}}:m")
    assert 43_000 < ttls["violence"] <= 43_200  # half a day
    assert 29 * 86_400 < ttls["general"] <= 30 * 86_400


async def leftovers(rds: Any, prefix: str, needles: list[str]) -> list[str]:
    """Keys of this deployment that name or hold any of ``needles`` (session or visitor ids),
    except the audit trail (who was shown which chat id, when) and the hourly rate counters."""
    found = []
    async for key in rds.scan_iter(f"{prefix}:*"):
        if key == Keys(prefix).audit or ":rl:" in key:
            continue
        kind = await rds.type(key)
        if kind == "string":
            content = [await rds.get(key)]
        elif kind == "hash":
            content = [x for kv in (await rds.hgetall(key)).items() for x in kv]
        elif kind == "set":
            content = list(await rds.smembers(key))
        elif kind == "zset":
            content = await rds.zrange(key, 0, -1)
        elif kind == "stream":
            content = [x for _, f in await rds.xrange(key) for kv in f.items() for x in kv]
        else:
            content = await rds.lrange(key, 0, -1)
        if any(n in key or any(n in str(c) for c in content) for n in needles):
            found.append(key)
    return found


async def test_chats_past_retention_are_purged_automatically_and_leave_nothing(
        chatd_factory, redis_server, rds, prefix: str) -> None:
    from conftest import connect_pair

    env = {"CHATD_RETENTION_DAYS": str(4 / 86400), "CHATD_PURGE_EVERY": "1", "CHATD_TICK": "0.2"}
    a = await chatd_factory(env=env)
    b = await chatd_factory(env=env)
    visitor, agent, sid = await connect_pair(a, redis_server.url, agent_server=b)
    await visitor.send({"type": "send", "session": sid, "cid": "1", "text": "mon adresse"})
    await agent.send({"type": "note", "session": sid, "cid": "n", "text": "à rappeler"})
    await agent.recv("ack", cid="n")
    await agent.send({"type": "close", "session": sid, "disposition": "answered"})
    await visitor.recv("closed", session=sid)
    await visitor.send({"type": "rate", "session": sid, "rating": 5, "comment": "merci"})
    await visitor.recv("rated")
    waiting = await make_visitor(b)  # leaves while queued, by quick exit
    sid2 = await start_chat(waiting, text="je dois partir")
    await waiting.send({"type": "close", "session": sid2, "reason": "quick_exit"})
    await waiting.recv("closed", session=sid2)
    helped = await make_visitor(a)  # closed by the citizen while queued
    sid3 = await start_chat(helped)
    await helped.send({"type": "close", "session": sid3})
    await helped.recv("closed", session=sid3)
    vids = [v.token.split(".")[1] for v in (visitor, waiting, helped)]  # type: ignore[attr-defined]
    needles = [sid, sid2, sid3, *vids]
    assert await leftovers(rds, prefix, needles)  # closed, still within retention

    async def nothing_left() -> bool:
        return not await leftovers(rds, prefix, needles)
    assert await eventually(nothing_left, 30), await leftovers(rds, prefix, needles)
    assert "closed chat(s) deleted" in a.output() + b.output()


async def test_an_s3_store_without_its_client_is_one_clear_line() -> None:
    """As if `pip install .` had been run without the `[s3]` extra."""
    code = ("import sys; sys.modules['aiobotocore'] = None; from chatd.cli import main; "
            "sys.exit(main(['serve']))")
    r = await run([sys.executable, "-c", code], env={
        **os.environ, "CHATD_UPLOAD_STORE": "s3", "CHATD_S3_BUCKET": "photos"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("chatd: CHATD_UPLOAD_STORE=s3 needs aiobotocore: "
                                "pip install 'chatd[s3]'")
