"""Photos (docs/protocol.md, "Photos"): uploads re-encoded without metadata, refused when
they are not images or are hostile ones, readable only by the chat's parties, sent in
messages, deleted with their chat. Real chatd, real Redis, real image files made here."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import photos
import pytest
from conftest import connect_pair, make_agent, make_visitor, start_chat
from harness import Chatd, eventually
from photos import decoded, upload

pytestmark = pytest.mark.asyncio


def bearer(client: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token}"}


@pytest.fixture
async def photo_server(chatd_factory: Any, tmp_path: Path) -> Chatd:
    server = await chatd_factory(env={"CHATD_UPLOAD_DIR": str(tmp_path / "uploads")})
    server.upload_dir = tmp_path / "uploads"  # type: ignore[attr-defined]
    return server


async def test_a_photo_loses_its_gps_and_metadata_and_is_turned_upright(
        photo_server: Chatd, redis_server: Any) -> None:
    visitor, agent, sid = await connect_pair(photo_server, redis_server.url)
    async with httpx.AsyncClient(base_url=photo_server.http) as http:
        original = photos.jpeg_with_gps(400, 300, orientation=6)
        assert decoded(original).getexif().get_ifd(0x8825)  # the GPS is there to start with
        r = await upload(http, visitor.token, sid, original)
        assert r.status_code == 201, r.text
        up = r.json()
        assert set(up) == {"id", "type", "width", "height", "bytes", "thumb_width",
                           "thumb_height"}
        assert up["type"] == "image/jpeg"
        assert (up["width"], up["height"]) == (300, 400)  # turned as its tag said
        assert len(up["id"]) >= 22 + 2 and "/" not in up["id"]
        r = await http.get(f"/api/uploads/{up['id']}", headers=bearer(visitor))
        assert r.status_code == 200
        assert r.headers["content-type"] == "image/jpeg"
        assert len(r.content) == up["bytes"]
        im = decoded(r.content)
        assert im.size == (300, 400)
        assert not im.getexif() and "exif" not in im.info and "icc_profile" not in im.info
        assert "comment" not in im.info and b"Dupont" not in r.content
        assert b"PhoneMaker" not in r.content and b"GPS" not in r.content
        # the red left half is now the top: turned 90° clockwise
        top, bottom = im.getpixel((150, 20)), im.getpixel((150, 380))
        assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60
        r = await http.get(f"/api/uploads/{up['id']}/thumb", headers=bearer(visitor))
        assert r.status_code == 200
        thumb = decoded(r.content)
        assert thumb.size == (up["thumb_width"], up["thumb_height"]) == (240, 320)
        assert not thumb.getexif()


async def test_heic_webp_and_png_are_accepted_and_text_chunks_dropped(
        photo_server: Chatd, redis_server: Any) -> None:
    visitor = await make_visitor(photo_server)
    sid = await start_chat(visitor)  # queued chats take photos too
    async with httpx.AsyncClient(base_url=photo_server.http) as http:
        r = await upload(http, visitor.token, sid, photos.heic(), name="IMG_0001.HEIC",
                         content_type="image/heic")
        assert r.status_code == 201, r.text
        assert (r.json()["type"], r.json()["width"], r.json()["height"]) == ("image/jpeg", 200, 150)
        r = await upload(http, visitor.token, sid, photos.webp(), name="a.webp")
        assert r.status_code == 201 and r.json()["type"] == "image/jpeg"
        # transparency is kept, as a PNG; its text chunks are not
        r = await upload(http, visitor.token, sid, photos.png_with_text(alpha=True), name="a.png")
        assert r.status_code == 201 and r.json()["type"] == "image/png", r.text
        got = await http.get(f"/api/uploads/{r.json()['id']}", headers=bearer(visitor))
        assert got.headers["content-type"] == "image/png"
        im = decoded(got.content)
        assert im.mode == "RGBA" and not getattr(im, "text", {}) and b"Dupont" not in got.content
        assert b"tEXt" not in got.content and b"iTXt" not in got.content
        # an opaque PNG is a photo: JPEG
        r = await upload(http, visitor.token, sid, photos.png_with_text(alpha=False))
        assert r.status_code == 201 and r.json()["type"] == "image/jpeg"


@pytest.mark.parametrize("name, data, codes", [
    ("svg", photos.SVG, {415}),
    ("pdf", photos.PDF, {415}),
    ("html", photos.HTML, {415}),
    ("gif", photos.gif(), {415}),
    ("polyglot", photos.polyglot(), {415, 422}),
    ("bomb", photos.png_bomb(), {422}),
    ("truncated", photos.jpeg_with_gps(800, 600)[:3000], {422}),
    ("empty", b"", {415}),
])
async def test_what_is_not_an_accepted_image_is_refused(
        photo_server: Chatd, redis_server: Any, name: str, data: bytes, codes: set[int]) -> None:
    visitor = await make_visitor(photo_server)
    sid = await start_chat(visitor)
    async with httpx.AsyncClient(base_url=photo_server.http) as http:
        # whatever the sender says it is: only the bytes count
        r = await upload(http, visitor.token, sid, data, name="photo.jpg",
                         content_type="image/jpeg")
        assert r.status_code in codes, (r.status_code, r.text)
        expected = {415: "unsupported_type", 422: "bad_image"}[r.status_code]
        assert r.json()["error"] == expected and r.json()["message"]
        assert r.headers["content-type"].startswith("application/json")
        if name == "bomb":
            assert "pixels" in r.json()["message"]
    assert not list(Path(photo_server.upload_dir).rglob("*.*"))  # type: ignore[attr-defined]


async def test_limits_size_count_and_fields(chatd_factory: Any, tmp_path: Path,
                                            redis_server: Any) -> None:
    server = await chatd_factory(env={"CHATD_UPLOAD_DIR": str(tmp_path),
                                      "CHATD_UPLOAD_MAX_MB": "0.5"})
    visitor = await make_visitor(server)
    sid = await start_chat(visitor)
    small = photos.jpeg_with_gps(64, 48)
    async with httpx.AsyncClient(base_url=server.http) as http:
        big = photos.noisy_jpeg(900, 900)
        assert len(big) > 512 * 1024
        r = await upload(http, visitor.token, sid, big)
        assert (r.status_code, r.json()["error"]) == (413, "too_large")

        async def chunks() -> Any:  # no Content-Length: the limit holds while it streams
            body = b"".join([b"--XyZ\r\n", b'Content-Disposition: form-data; name="session"\r\n\r\n',
                             sid.encode(), b"\r\n--XyZ\r\n",
                             b'Content-Disposition: form-data; name="file"; filename="a.jpg"\r\n',
                             b"Content-Type: image/jpeg\r\n\r\n", big, b"\r\n--XyZ--\r\n"])
            for i in range(0, len(body), 65536):
                yield body[i:i + 65536]
        r = await http.post("/api/uploads", content=chunks(), headers={
            **bearer(visitor), "Content-Type": "multipart/form-data; boundary=XyZ"})
        assert (r.status_code, r.json()["error"]) == (413, "too_large")
        r = await upload(http, visitor.token, None, small)
        assert (r.status_code, r.json()["error"]) == (400, "bad_message")
        r = await upload(http, visitor.token, sid, None)
        assert (r.status_code, r.json()["error"]) == (400, "bad_message")
        r = await http.post("/api/uploads", headers=bearer(visitor), json={"session": sid})
        assert (r.status_code, r.json()["error"]) == (400, "bad_message")
        r = await upload(http, None, sid, small)
        assert (r.status_code, r.json()["error"]) == (401, "unauthorized")
        r = await upload(http, "not-a-token", sid, small)
        assert (r.status_code, r.json()["error"]) == (401, "unauthorized")
        for i in range(20):
            r = await upload(http, visitor.token, sid, small)
            assert r.status_code == 201, (i, r.text)
        r = await upload(http, visitor.token, sid, small)  # the 21st
        assert (r.status_code, r.json()["error"]) == (429, "rate_limited")
    assert len(list(tmp_path.rglob("*"))) == 1 + 40  # the chat's folder, 20 photos, 20 thumbs


async def test_only_the_chats_parties_upload_and_read_and_supervisors_are_audited(
        photo_server: Chatd, redis_server: Any) -> None:
    visitor, agent, sid = await connect_pair(photo_server, redis_server.url)
    stranger = await make_visitor(photo_server)
    await start_chat(stranger)
    colleague = await make_agent(photo_server, redis_server.url, available=False)
    sup = await make_agent(photo_server, redis_server.url, role="supervisor", available=False)
    jpeg = photos.jpeg_with_gps(80, 60)
    async with httpx.AsyncClient(base_url=photo_server.http) as http:
        r = await upload(http, visitor.token, sid, jpeg)
        assert r.status_code == 201
        pid = r.json()["id"]
        r = await upload(http, agent.token, sid, jpeg)  # the gendarme who holds it
        assert r.status_code == 201
        for who in (stranger, colleague, sup):  # not a party: as if there were no such chat
            r = await upload(http, who.token, sid, jpeg)
            assert (r.status_code, r.json()["error"]) == (404, "not_found")
        r = await upload(http, visitor.token, "nosuchchat", jpeg)
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        nowhere = []
        for who in (stranger, colleague):
            for path in (f"/api/uploads/{pid}", f"/api/uploads/{pid}/thumb"):
                nowhere.append(await http.get(path, headers=bearer(who)))
        nowhere.append(await http.get(f"/api/uploads/{pid}"))  # no credentials at all
        nowhere.append(await http.get(f"/api/uploads/{pid[:-2]}xx", headers=bearer(visitor)))
        r = await http.get("/api/uploads/a%2F..%2F..%2Fpasswd", headers=bearer(visitor))
        assert r.status_code == 404
        assert {(r.status_code, r.json()["error"]) for r in nowhere} == {(404, "not_found")}
        assert len({r.json()["message"] for r in nowhere}) == 1  # one answer for all
        r = await http.get(f"/api/uploads/{pid}", headers=bearer(agent))
        assert r.status_code == 200
        h = r.headers
        assert h["x-content-type-options"] == "nosniff"
        assert h["content-disposition"] == "inline"
        assert h["content-security-policy"] == "default-src 'none'; sandbox"
        assert h["cache-control"] == "private, no-store"
        assert h["content-type"] == "image/jpeg"
        r = await http.get(f"/api/uploads/{pid}?download=1", headers=bearer(agent))
        assert r.headers["content-disposition"] == f'attachment; filename="photo-{pid}.jpg"'
        # the console's cookie works too
        http.cookies.set("chatd_session", sup.token)
        r = await http.get(f"/api/uploads/{pid}/thumb")
        assert r.status_code == 200
        http.cookies.clear()
        r = await http.get(f"/api/uploads/{pid}", headers=bearer(sup))
        assert r.status_code == 200
        r = await http.get("/api/audit", params={"session": sid}, headers=bearer(sup))
        seen = [(e["who"], e["how"]) for e in r.json()["entries"]]
        # the supervisor's two views share one entry (10 minutes); the download is one
        assert seen.count((sup.login, "attachment")) == 1
        assert seen.count((agent.login, "download")) == 1
        assert (agent.login, "attachment") not in seen
        # a cookie POST from another site is refused (CSRF); a Bearer one is not a cookie's
        http.cookies.set("chatd_session", agent.token)
        r = await http.post("/api/uploads", headers={"Origin": "https://evil.example"},
                            **photos.upload_form(sid, jpeg))
        assert (r.status_code, r.json()["error"]) == (403, "forbidden")
        r = await http.post("/api/uploads", headers={"Origin": photo_server.http},
                            **photos.upload_form(sid, jpeg))
        assert r.status_code == 201
        http.cookies.clear()
        # closed: no more photos, but the parties still see those sent
        await visitor.send({"type": "close", "session": sid})
        await agent.recv("closed", session=sid)
        r = await upload(http, visitor.token, sid, jpeg)
        assert (r.status_code, r.json()["error"]) == (409, "conflict")
        r = await upload(http, agent.token, sid, jpeg)
        assert (r.status_code, r.json()["error"]) == (409, "conflict")
        assert (await http.get(f"/api/uploads/{pid}", headers=bearer(visitor))).status_code == 200


async def test_a_photo_is_sent_in_a_message_to_both_sides_once(
        photo_server: Chatd, redis_server: Any) -> None:
    visitor, agent, sid = await connect_pair(photo_server, redis_server.url,
                                             subprotocol="chatd.v1.json")
    async with httpx.AsyncClient(base_url=photo_server.http) as http:
        r = await upload(http, visitor.token, sid, photos.jpeg_with_gps(400, 300))
        mine = r.json()
        r = await upload(http, agent.token, sid, photos.png_with_text())
        theirs = r.json()
    expected = {"id": mine["id"], "type": "image/jpeg", "width": 300, "height": 400,
                "url": f"/api/uploads/{mine['id']}", "thumb_url": f"/api/uploads/{mine['id']}/thumb"}
    await visitor.send({"type": "send", "session": sid, "cid": "p1", "attachment": mine["id"]})
    ack = await visitor.recv("ack", cid="p1")
    for side in (visitor, agent):  # msgpack and JSON
        m = await side.recv("msg", session=sid, seq=ack["seq"])
        assert m["attachment"] == expected and m["text"] == "" and m["from"] == "visitor"
    # the same cid again: the original seq, nothing new
    await visitor.send({"type": "send", "session": sid, "cid": "p1", "attachment": mine["id"]})
    assert (await visitor.recv("ack", cid="p1"))["seq"] == ack["seq"]
    await agent.no_frame("msg", within=0.5)
    # with words; the other side's photo, or none of this chat, is not yours to send
    await agent.send({"type": "send", "session": sid, "cid": "a1", "text": "Reçu, merci",
                      "attachment": theirs["id"]})
    m = await visitor.recv("msg", session=sid, cid="a1")
    assert m["text"] == "Reçu, merci" and m["attachment"]["type"] == "image/png"
    await agent.send({"type": "send", "session": sid, "cid": "a2", "attachment": mine["id"]})
    assert (await agent.recv("error", ref="a2"))["code"] == "not_found"
    await visitor.send({"type": "send", "session": sid, "cid": "p2",
                        "attachment": sid + ".AAAAAAAAAAAAAAAAAAAAAA"})
    assert (await visitor.recv("error", ref="p2"))["code"] == "not_found"
    await visitor.send({"type": "send", "session": sid, "cid": "p3", "text": ""})
    assert (await visitor.recv("error", ref="p3"))["code"] == "bad_message"
    await visitor.send({"type": "send", "session": sid, "cid": "p4"})
    assert (await visitor.recv("error", ref="p4"))["code"] == "bad_message"
    # everywhere messages are read again: a resume, a transcript, a new agent connection
    again = await make_visitor(photo_server, subprotocol="chatd.v1.msgpack", token=visitor.token,
                               resume={"session": sid, "after": 0})
    m = await again.recv("msg", session=sid, seq=ack["seq"])
    assert m["attachment"] == expected
    async with httpx.AsyncClient(base_url=photo_server.http) as http:
        t = (await http.get(f"/api/sessions/{sid}", headers=bearer(agent))).json()
    photo_msgs = [m for m in t["messages"] if "attachment" in m]
    assert [m["attachment"]["id"] for m in photo_msgs] == [mine["id"], theirs["id"]]
    sup = await make_agent(photo_server, redis_server.url, role="supervisor", available=False)
    await sup.send({"type": "take_over", "session": sid})
    assigned = await sup.recv("assigned", session=sid)
    assert [m["attachment"]["id"] for m in assigned["history"] if "attachment" in m] == \
        [mine["id"], theirs["id"]]


async def test_photos_being_processed_do_not_hold_up_the_chats(
        photo_server: Chatd, redis_server: Any) -> None:
    """Several big photos at once while a text chat goes on: every message arrives, every
    photo is stored (no timing asserted here: loadtest `uploads` measures it)."""
    visitor, agent, sid = await connect_pair(photo_server, redis_server.url)
    uploader = await make_visitor(photo_server)
    other = await start_chat(uploader)
    big = photos.noisy_jpeg(2400, 1800)

    async def send_photos() -> list[int]:
        async with httpx.AsyncClient(base_url=photo_server.http, timeout=60) as http:
            rs = await asyncio.gather(*(upload(http, uploader.token, other, big) for _ in range(6)))
        return [r.status_code for r in rs]

    async def chat() -> None:
        for i in range(40):
            await visitor.send({"type": "send", "session": sid, "cid": f"t{i}", "text": f"m{i}"})
            await agent.recv("msg", session=sid, cid=f"t{i}", timeout=10)
            await asyncio.sleep(0.02)

    codes, _ = await asyncio.gather(send_photos(), chat())
    # the pool takes workers + queue (1 + 8) photos at once: all six are stored
    assert codes == [201] * 6


async def _chat_with_photos(server: Chatd, redis_url: str) -> tuple[Any, Any, str, list[str]]:
    visitor, agent, sid = await connect_pair(server, redis_url)
    ids = []
    async with httpx.AsyncClient(base_url=server.http) as http:
        for who, data in ((visitor, photos.jpeg_with_gps(120, 90)), (agent, photos.png_with_text())):
            r = await upload(http, who.token, sid, data)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
    for i, (who, pid) in enumerate(zip((visitor, agent), ids)):
        await who.send({"type": "send", "session": sid, "cid": f"p{i}", "attachment": pid})
        await who.recv("ack", cid=f"p{i}")
    return visitor, agent, sid, ids


async def test_quick_exit_keeps_the_photos_export_writes_them_purge_deletes_them(
        photo_server: Chatd, redis_server: Any, rds: Any, tmp_path: Path) -> None:
    from test_serve import chatd_cli

    visitor, agent, sid, ids = await _chat_with_photos(photo_server, redis_server.url)
    await visitor.send({"type": "close", "session": sid, "reason": "quick_exit"})
    await agent.recv("closed", session=sid)
    async with httpx.AsyncClient(base_url=photo_server.http) as http:  # kept for the gendarme
        assert (await http.get(f"/api/uploads/{ids[0]}", headers=bearer(agent))).status_code == 200
    folder = Path(photo_server.upload_dir) / sid  # type: ignore[attr-defined]
    assert len(list(folder.iterdir())) == 4
    env = {"CHATD_KEY_PREFIX": photo_server.prefix,
           "CHATD_UPLOAD_DIR": str(photo_server.upload_dir)}  # type: ignore[attr-defined]
    out = tmp_path / "export"
    r = await chatd_cli("export", "--with-files", str(out), "--redis-url", redis_server.url, env=env)
    assert r.returncode == 0, r.stderr
    (t,) = [json.loads(line) for line in r.stdout.splitlines()]
    attached = [m["attachment"] for m in t["messages"] if "attachment" in m]
    assert [a["id"] for a in attached] == ids
    assert [a["file"] for a in attached] == [f"{sid}/{ids[0]}.jpg", f"{sid}/{ids[1]}.png"]
    assert decoded((out / attached[0]["file"]).read_bytes()).size == (90, 120)
    assert decoded((out / attached[1]["file"]).read_bytes()).mode == "RGBA"
    r = await chatd_cli("purge", "--older-than", "0", "--redis-url", redis_server.url, env=env)
    assert r.returncode == 0 and "purged 1" in r.stdout, r.stderr
    assert not folder.exists()
    assert not await rds.keys(f"{photo_server.prefix}:s:{{{sid}}}*")


async def test_the_automatic_sweep_deletes_photos_with_their_chat(
        chatd_factory: Any, redis_server: Any, rds: Any, tmp_path: Path) -> None:
    server = await chatd_factory(env={"CHATD_UPLOAD_DIR": str(tmp_path),
                                      "CHATD_RETENTION_DAYS": "0.00002",  # 1.7 s
                                      "CHATD_PURGE_EVERY": "0.5"})
    visitor, agent, sid, ids = await _chat_with_photos(server, redis_server.url)
    assert len(list((tmp_path / sid).iterdir())) == 4
    await agent.send({"type": "close", "session": sid, "disposition": "answered"})
    await visitor.recv("closed", session=sid)
    assert await eventually(lambda: not (tmp_path / sid).exists(), 15)
    assert not await rds.exists(f"{server.prefix}:s:{{{sid}}}:u")
    assert list(tmp_path.iterdir()) == []


async def test_photos_past_the_pool_and_its_queue_are_answered_unavailable(
        chatd_factory: Any, redis_server: Any, tmp_path: Path) -> None:
    """One worker, no queue: of photos sent at once, those that find the worker busy are
    refused at once (503), not queued without bound; sent again later, they go in."""
    server = await chatd_factory(env={"CHATD_UPLOAD_DIR": str(tmp_path),
                                      "CHATD_IMAGE_WORKERS": "1", "CHATD_IMAGE_QUEUE": "0"})
    visitor = await make_visitor(server)
    sid = await start_chat(visitor)
    big = photos.noisy_jpeg(3000, 2250, quality=80)
    async with httpx.AsyncClient(base_url=server.http, timeout=60) as http:
        assert (await upload(http, visitor.token, sid, photos.webp())).status_code == 201  # warm
        rs = await asyncio.gather(*(upload(http, visitor.token, sid, big) for _ in range(4)))
        codes = sorted(r.status_code for r in rs)
        assert 201 in codes and 503 in codes and set(codes) <= {201, 503}, codes
        assert {r.json()["error"] for r in rs if r.status_code == 503} == {"unavailable"}
        assert (await upload(http, visitor.token, sid, big)).status_code == 201


async def test_the_photo_workers_go_with_a_chatd_killed_by_sigkill(
        photo_server: Chatd, redis_server: Any) -> None:
    """A worker killed with SIGKILL runs no cleanup; its photo workers must not wait for work
    under init for ever."""
    import os
    import signal

    import psutil

    visitor = await make_visitor(photo_server)
    sid = await start_chat(visitor)
    async with httpx.AsyncClient(base_url=photo_server.http, timeout=60) as http:
        assert (await upload(http, visitor.token, sid, photos.webp())).status_code == 201
    assert photo_server.proc is not None
    workers = psutil.Process(photo_server.proc.pid).children()  # chatd's worker processes
    pool = [p for w in workers for p in w.children()]
    assert pool, "the photo went through a pool of processes"
    for w in workers:
        os.kill(w.pid, signal.SIGKILL)

    def gone() -> bool:
        return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in pool)
    assert await eventually(gone, 10), [p.pid for p in pool]
