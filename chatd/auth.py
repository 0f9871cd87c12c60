"""Who is who: agent accounts (argon2 password hashes), agent login tokens, visitor tokens.

Agent tokens are random and kept in Redis (by digest) so that logout and disabling an account
revoke them at once on every process. Visitor tokens are signed, not stored: a visitor is
anonymous, and the token only proves "the same browser tab as before".
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .store import Store

LOGIN_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
ROLES = ("agent", "supervisor", "admin")
VISITOR_TOKEN_TTL_S = 24 * 3600

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password")  # equal work for unknown logins


class AccountError(Exception):
    """A one-line reason an account operation was refused."""


@dataclass(frozen=True, slots=True)
class Account:
    login: str
    name: str
    role: str
    langs: tuple[str, ...]
    topics: tuple[str, ...]  # empty: every topic
    capacity: int
    disabled: bool = False
    # the stored record as read (password hash included): what a Redis that lost its data is
    # given back for the agents still connected (Runtime.guard)
    record: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def profile(self) -> dict[str, Any]:
        return {"login": self.login, "name": self.name, "role": self.role,
                "langs": list(self.langs), "topics": list(self.topics),
                "capacity": self.capacity}

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "admin")


def token_digest(token: str) -> str:
    """What Redis keeps of an agent's login token (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Auth:
    def __init__(self, store: Store, secret: str, token_ttl_s: float,
                 previous: tuple[str, ...] = ()) -> None:
        self.store = store
        self.redis = store.redis
        self.keys = store.keys
        self._key = _visitor_key(secret)
        # rotation: tokens signed with a previous secret stay valid until they expire
        self._old_keys = [_visitor_key(p) for p in previous]
        self.token_ttl_s = int(token_ttl_s)

    # -- accounts -----------------------------------------------------------------------------

    async def add_account(self, login: str, name: str, role: str, langs: list[str],
                          topics: list[str], capacity: int, password: str) -> Account:
        if not LOGIN_RE.match(login):
            raise AccountError(f"login {login!r}: use 1-64 lowercase letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise AccountError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        if not 1 <= capacity <= 50:
            raise AccountError("capacity: expected a whole number from 1 to 50")
        if len(password) < 10:
            raise AccountError("password: at least 10 characters")
        if not name.strip() or len(name) > 80:
            raise AccountError("name: 1-80 characters")
        pw = await asyncio.to_thread(_hasher.hash, password)
        fields = {"name": name.strip(), "role": role, "langs": ",".join(langs),
                  "topics": ",".join(topics), "capacity": capacity, "pw": pw, "disabled": 0}
        created = await self.redis.hsetnx(self.keys.account(login), "login", login)
        if not created:
            raise AccountError(f"login {login!r} already exists")
        await self.redis.hset(self.keys.account(login), mapping=fields)
        await self.redis.sadd(self.keys.accounts, login)
        return _account(login, fields)

    async def account(self, login: str) -> Account | None:
        raw = await self.redis.hgetall(self.keys.account(login))
        if not raw or "pw" not in raw:
            return None
        return _account(login, raw)

    async def accounts(self) -> list[Account]:
        logins = sorted(await self.redis.smembers(self.keys.accounts))
        async with self.redis.pipeline(transaction=False) as pipe:
            for login in logins:
                pipe.hgetall(self.keys.account(login))
            raws = await pipe.execute()
        return [_account(login, raw) for login, raw in zip(logins, raws) if raw and "pw" in raw]

    async def disable(self, login: str) -> None:
        if not await self.redis.exists(self.keys.account(login)):
            raise AccountError(f"no account {login!r}")
        await self.redis.hset(self.keys.account(login), "disabled", 1)
        await self.revoke_all(login)

    async def revoke_all(self, login: str) -> None:
        digests = await self.redis.smembers(self.keys.tokens(login))
        async with self.redis.pipeline(transaction=True) as pipe:
            for d in digests:
                pipe.delete(self.keys.token(d))
            pipe.delete(self.keys.tokens(login))
            await pipe.execute()
        await self.store.publish("a", login, {"e": "kick"})

    async def restore(self, account: Account, credential: str) -> None:
        """Gives a Redis that lost its data back a connected agent's account (as last read)
        and login token, unless they were recreated meanwhile: the agent works on, and can
        reload the console. Other accounts must be restored by the operator."""
        key = self.keys.account(account.login)
        if account.record and await self.redis.hsetnx(key, "login", account.login):
            await self.redis.hset(key, mapping=account.record)
            await self.redis.sadd(self.keys.accounts, account.login)
        if credential:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(self.keys.token(credential), account.login, ex=self.token_ttl_s, nx=True)
                pipe.sadd(self.keys.tokens(account.login), credential)
                pipe.expire(self.keys.tokens(account.login), self.token_ttl_s)
                await pipe.execute()

    # -- agent sign-in ------------------------------------------------------------------------

    async def login(self, login: str, password: str) -> tuple[str, Account] | None:
        raw = await self.redis.hgetall(self.keys.account(login)) if LOGIN_RE.match(login) else {}
        ok = await asyncio.to_thread(_verify, raw.get("pw", _DUMMY_HASH), password)
        if not ok or not raw or raw.get("disabled") == "1":
            return None
        token = secrets.token_urlsafe(32)
        d = token_digest(token)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.token(d), login, ex=self.token_ttl_s)
            pipe.sadd(self.keys.tokens(login), d)
            pipe.expire(self.keys.tokens(login), self.token_ttl_s)
            await pipe.execute()
        return token, _account(login, raw)

    async def token_account(self, token: str | None) -> Account | None:
        if not token or len(token) > 512:
            return None
        login = await self.redis.get(self.keys.token(token_digest(token)))
        if login is None:
            return None
        acct = await self.account(login)
        if acct is None or acct.disabled:
            return None
        return acct

    async def logout(self, token: str) -> str | None:
        d = token_digest(token)
        login = await self.redis.getdel(self.keys.token(d))
        if login is None:
            return None
        await self.redis.srem(self.keys.tokens(login), d)
        await self.store.publish("a", login, {"e": "kick"})
        return str(login)

    # -- visitors -----------------------------------------------------------------------------

    def new_visitor(self) -> tuple[str, str]:
        vid = secrets.token_urlsafe(12)
        return vid, self.visitor_token(vid)

    def visitor_token(self, vid: str, now: float | None = None) -> str:
        exp = int((now or time.time()) + VISITOR_TOKEN_TTL_S)
        body = f"v1.{vid}.{exp}"
        return body + "." + self._sign(body)

    def visitor_of(self, token: str, now: float | None = None) -> str | None:
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != "v1":
            return None
        body = ".".join(parts[:3])
        if not any(hmac.compare_digest(self._sign(body, key), parts[3])
                   for key in [self._key, *self._old_keys]):
            return None
        try:
            exp = int(parts[2])
        except ValueError:
            return None
        if exp < (now or time.time()):
            return None
        return parts[1]

    def _sign(self, body: str, key: bytes | None = None) -> str:
        mac = hmac.new(key or self._key, body.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _visitor_key(secret: str) -> bytes:
    return hashlib.sha256(("chatd-visitor:" + secret).encode()).digest()


def _verify(pw_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(pw_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _split(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split(",") if v)


def _account(login: str, raw: dict[str, Any]) -> Account:
    return Account(login=login, name=str(raw.get("name", login)), role=str(raw.get("role", "agent")),
                   langs=_split(str(raw.get("langs", "fr"))) or ("fr",),
                   topics=_split(str(raw.get("topics", ""))),
                   capacity=int(raw.get("capacity", 3)),
                   disabled=str(raw.get("disabled", "0")) == "1",
                   record={str(k): str(v) for k, v in raw.items()})
