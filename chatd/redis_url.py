"""What a ``CHATD_REDIS_URL`` names: one Redis, a Sentinel-watched primary, or a Cluster.

Parsing only (no connection): the settings check a URL with it at start-up, so that a bad one
is one line for the operator (``ConfigError``), and ``store.connect`` builds the clients from
the result. Accepted (docs/operations.md, "Redis"):

- ``redis://[user:pass@]host:port[/db]``, ``rediss://…`` (TLS), ``unix:///path?password=…``
- ``redis+sentinel://[user:pass@]host:port[,host:port…]/SERVICE[?db=0]`` and
  ``rediss+sentinel://…``: the primary that the Sentinels name SERVICE; ``user:pass`` are the
  data nodes' credentials; ``sentinel_username`` / ``sentinel_password`` in the query if the
  Sentinels want their own
- ``redis+cluster://[user:pass@]host:port[,host:port…]`` and ``rediss+cluster://…``: any nodes
  of the cluster, from which the others are discovered

TLS options ride in the query as for redis-py: ``ssl_ca_certs``, ``ssl_certfile``,
``ssl_keyfile``, ``ssl_cert_reqs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")


class BadRedisUrl(ValueError):
    """The URL cannot name a Redis; the message says why, for one line of output."""


@dataclass(frozen=True)
class RedisTarget:
    kind: str  # "single" | "sentinel" | "cluster"
    url: str  # as given (a single Redis is reached with it directly)
    nodes: tuple[tuple[str, int], ...] = ()  # sentinels, or cluster seed nodes
    service: str = ""  # the Sentinel service name
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_options: dict[str, str] = field(default_factory=dict)
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    def redacted(self) -> str:
        """For logs: where, never the password."""
        if self.kind == "single":
            parts = urlsplit(self.url)
            host = parts.hostname or parts.path
            return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
        hosts = ",".join(f"{h}:{p}" for h, p in self.nodes)
        scheme = ("rediss+" if self.tls else "redis+") + self.kind
        return f"{scheme}://{hosts}" + (f"/{self.service}" if self.service else "")


def parse(url: str) -> RedisTarget:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme
    except ValueError as exc:
        raise BadRedisUrl(f"not a URL ({exc})") from None
    if scheme in ("redis", "rediss", "unix"):
        if scheme != "unix" and not parts.hostname:
            raise BadRedisUrl("no host")
        if scheme == "unix" and not parts.path:
            raise BadRedisUrl("no socket path")
        return RedisTarget("single", url, tls=scheme == "rediss")
    if scheme not in ("redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"):
        raise BadRedisUrl("expected redis://, rediss://, unix://, redis+sentinel://, "
                          "rediss+sentinel://, redis+cluster:// or rediss+cluster://")
    kind = scheme.split("+", 1)[1]
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = tuple(_node(h) for h in hostlist.split(","))
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - {"db", "sentinel_username", "sentinel_password", *TLS_OPTIONS}
    if unknown:
        raise BadRedisUrl(f"unknown option {sorted(unknown)[0]!r}")
    path = parts.path.strip("/")
    service = ""
    if kind == "sentinel":
        if not path or "/" in path:
            raise BadRedisUrl("name the Sentinel service after the hosts: "
                              "redis+sentinel://host:26379/SERVICE")
        service = unquote(path)
    elif path:
        raise BadRedisUrl("a cluster URL has no path (a cluster has one database)")
    try:
        db = int(query.get("db", "0"))
    except ValueError:
        raise BadRedisUrl(f"db: expected a number, got {query['db']!r}") from None
    if kind == "cluster" and db != 0:
        raise BadRedisUrl("a cluster has only db 0")
    return RedisTarget(
        kind, url, nodes, service, db, username, password, scheme.startswith("rediss"),
        {k: query[k] for k in TLS_OPTIONS if k in query},
        query.get("sentinel_username") or None, query.get("sentinel_password") or None)


def _node(text: str) -> tuple[str, int]:
    host, colon, port = text.strip().rpartition(":")
    if not colon or not host:
        raise BadRedisUrl(f"expected host:port, got {text.strip()!r}")
    host = host.strip("[]")  # an IPv6 literal
    try:
        number = int(port)
    except ValueError:
        raise BadRedisUrl(f"expected host:port, got {text.strip()!r}") from None
    if not 0 < number < 65536:
        raise BadRedisUrl(f"port out of range in {text.strip()!r}")
    return host, number
