"""Photos in an S3 bucket (CHATD_UPLOAD_STORE=s3): the same endpoints, the files in the bucket,
deleted from it with their chat. The bucket is moto's standalone S3 server, started here on a
free loopback port: a real HTTP S3 API, not a patched client."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import photos
import pytest
from conftest import connect_pair
from harness import Chatd, eventually, free_port, wait_for_exit
from photos import decoded, upload

pytestmark = pytest.mark.asyncio

BUCKET = "chatd-photos"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def moto_server_binary() -> str:
    found = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or \
        shutil.which("moto_server")
    assert found, ("moto_server is missing: pip install 'moto[server]' "
                   "(it comes with pip install -e '.[test]')")
    return found


@pytest.fixture
async def s3() -> AsyncIterator[str]:
    """moto's S3 server with an empty bucket; its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen([moto_server_binary(), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"

    async def answers() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(endpoint + "/moto-api/", timeout=0.5)).status_code < 500
        except httpx.HTTPError:
            return False
    try:
        assert await eventually(answers, 20), "moto_server did not start"
        async with client(endpoint) as s3c:
            await s3c.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={
                "LocationConstraint": "eu-west-3"})
        yield endpoint
    finally:
        proc.terminate()
        if not await wait_for_exit(proc, 10):
            proc.kill()
            proc.wait()


def client(endpoint: str) -> Any:
    from aiobotocore.session import get_session

    return get_session().create_client(
        "s3", region_name="eu-west-3", endpoint_url=endpoint,
        aws_access_key_id="testing", aws_secret_access_key="testing")


async def keys_in_bucket(endpoint: str) -> list[str]:
    async with client(endpoint) as s3c:
        page = await s3c.list_objects_v2(Bucket=BUCKET)
    return sorted(o["Key"] for o in page.get("Contents", ()))


async def test_photos_in_a_bucket_are_served_exported_and_purged_with_their_chat(
        chatd_factory: Any, redis_server: Any, s3: str, tmp_path: Path) -> None:
    env = {"CHATD_UPLOAD_STORE": "s3", "CHATD_S3_ENDPOINT": s3, "CHATD_S3_BUCKET": BUCKET,
           "CHATD_S3_REGION": "eu-west-3", **CREDENTIALS}
    server: Chatd = await chatd_factory(env=env)
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await upload(http, visitor.token, sid, photos.jpeg_with_gps(400, 300))
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        assert await keys_in_bucket(s3) == [f"{sid}/{pid}", f"{sid}/{pid}.thumb"]
        got = await http.get(f"/api/uploads/{pid}", headers={"Authorization": f"Bearer {agent.token}"})
        assert got.status_code == 200 and decoded(got.content).size == (300, 400)
        assert not decoded(got.content).getexif()
        stranger = await http.get(f"/api/uploads/{pid}/thumb")
        assert stranger.status_code == 404
    await visitor.send({"type": "send", "session": sid, "cid": "p1", "attachment": pid})
    assert (await agent.recv("msg", session=sid, cid="p1"))["attachment"]["id"] == pid
    await agent.send({"type": "close", "session": sid, "disposition": "answered"})
    await visitor.recv("closed", session=sid)

    cli_env = {**os.environ, **env, "CHATD_KEY_PREFIX": server.prefix}
    out = tmp_path / "export"

    async def chatd(*args: str) -> subprocess.CompletedProcess[str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chatd", *args, "--redis-url", redis_server.url, env=cli_env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        o, e = await proc.communicate()
        return subprocess.CompletedProcess(args, proc.returncode or 0, o.decode(), e.decode())

    r = await chatd("export", "--with-files", str(out))
    assert r.returncode == 0, r.stderr
    (t,) = [json.loads(line) for line in r.stdout.splitlines()]
    (photo,) = [m["attachment"] for m in t["messages"] if "attachment" in m]
    assert (out / photo["file"]).read_bytes() == got.content
    r = await chatd("purge", "--older-than", "0")
    assert r.returncode == 0 and "purged 1" in r.stdout, r.stderr
    assert await keys_in_bucket(s3) == []


async def test_the_sweep_empties_the_bucket_of_a_chat_past_retention(
        chatd_factory: Any, redis_server: Any, s3: str) -> None:
    env = {"CHATD_UPLOAD_STORE": "s3", "CHATD_S3_ENDPOINT": s3, "CHATD_S3_BUCKET": BUCKET,
           "CHATD_S3_REGION": "eu-west-3", "CHATD_RETENTION_DAYS": "0.00002",
           "CHATD_PURGE_EVERY": "0.5", **CREDENTIALS}
    server: Chatd = await chatd_factory(env=env)
    visitor, agent, sid = await connect_pair(server, redis_server.url)
    async with httpx.AsyncClient(base_url=server.http) as http:
        for who in (visitor, agent):
            r = await upload(http, who.token, sid, photos.webp())
            assert r.status_code == 201, r.text
    assert len(await keys_in_bucket(s3)) == 4
    await visitor.send({"type": "close", "session": sid})
    await agent.recv("closed", session=sid)

    async def empty() -> bool:
        return await keys_in_bucket(s3) == []
    assert await eventually(empty, 15)
