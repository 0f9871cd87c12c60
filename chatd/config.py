"""Settings: read once from the command line and ``CHATD_*`` variables, checked, then frozen.

Nothing else in chatd reads ``os.environ``. A bad value raises ``ConfigError`` with one line that
names the setting, and ``chatd`` prints that line and exits 2: an operator at 3 a.m. should see
``CHATD_OFFER_TIMEOUT: expected a number of seconds > 0, got 'thirty'`` and nothing else.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from . import redis_url
from .canned import DEFAULT_CANNED, Canned, CannedError, canned_from_tables


class ConfigError(Exception):
    """A setting has a bad value; the message is one line meant for the operator."""


@dataclass(frozen=True)
class Topic:
    id: str
    label_fr: str
    label_en: str
    priority: int = 0  # higher is served first
    weight: int = 1  # capacity slots one chat of this topic takes
    reserved: int = 0  # agent slots kept free across the team for this topic and higher
    retention_days: float | None = None  # closed chats of this topic kept this long (None: global)
    # the other languages of the widget; empty: the French label is shown
    label_es: str = ""
    label_de: str = ""
    label_it: str = ""
    label_fr_falc: str = ""  # easy-read French
    # other ways to get help shown when nobody can answer now: ({"label": {lang: text},
    # "tel"|"sms"|"url": ...}, ...); empty: the widget's own list for the topic
    alternatives: tuple[dict[str, Any], ...] = ()

    def labels(self) -> dict[str, str]:
        """The label in every language the widget speaks, French where one is missing."""
        fr = self.label_fr
        return {"fr": fr, "en": self.label_en or fr, "es": self.label_es or fr,
                "de": self.label_de or fr, "it": self.label_it or fr,
                "fr-falc": self.label_fr_falc or fr}

    def public(self, retention_days: float) -> dict[str, Any]:
        out = {"id": self.id, "label": self.labels(), "priority": self.priority,
               "weight": self.weight, "retention_days": self.retention_days or retention_days}
        if self.alternatives:
            out["alternatives"] = [dict(a) for a in self.alternatives]
        return out


DEFAULT_TOPICS: tuple[Topic, ...] = (
    Topic("violence", "Violences sexuelles ou conjugales", "Sexual or domestic violence", 30, 2, 0,
          label_es="Violencia sexual o de pareja", label_de="Sexuelle oder häusliche Gewalt",
          label_it="Violenza sessuale o domestica",
          label_fr_falc="Violences dans le couple, violences sexuelles"),
    Topic("radicalisation", "Signaler une radicalisation", "Report radicalisation", 20, 1, 0,
          label_es="Denunciar una radicalización", label_de="Radikalisierung melden",
          label_it="Segnalare una radicalizzazione",
          label_fr_falc="Signaler une personne qui devient radicale"),
    Topic("theft", "Vol, cambriolage", "Theft, burglary", 10, 1, 0,
          label_es="Robo, robo en vivienda", label_de="Diebstahl, Einbruch",
          label_it="Furto, furto in casa", label_fr_falc="On m'a volé quelque chose"),
    Topic("scam", "Escroquerie, arnaque en ligne", "Scams and cybercrime", 10, 1, 0,
          label_es="Estafa, fraude en internet", label_de="Betrug, Internetbetrug",
          label_it="Truffa, frode online", label_fr_falc="Une arnaque, sur Internet ou ailleurs"),
    Topic("road", "Sécurité routière, code de la route", "Road safety, highway code", 0, 1, 0,
          label_es="Seguridad vial, código de circulación",
          label_de="Verkehrssicherheit, Straßenverkehrsordnung",
          label_it="Sicurezza stradale, codice della strada",
          label_fr_falc="La route, la voiture, le permis"),
    Topic("general", "Renseignement général", "General information", 0, 1, 0,
          label_es="Información general", label_de="Allgemeine Auskunft",
          label_it="Informazioni generali", label_fr_falc="Une autre question"),
)


@dataclass(frozen=True)
class Settings:
    """Every chatd setting. Units are in the names' comments; defaults are the contract's."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    redis_url: str | None = None  # None: start an embedded redis-server in data_dir
    data_dir: Path = Path("chatd-data")
    key_prefix: str = "chatd"  # every Redis key and channel starts with it
    secret: str | None = None  # None: generated once and kept in Redis
    secret_previous: tuple[str, ...] = ()  # still accepted (rotation); keep them >= 24 h
    public_url: str | None = None  # the server's own origin, e.g. https://chat.example.fr
    allowed_origins: tuple[str, ...] = ()  # visitor Origins; empty: the server's own origin
    offer_timeout: float = 30.0  # seconds an agent has to accept an offer
    assign_mode: str = "offer"  # "offer" or "direct" (no accept step)
    heartbeat_ttl: float = 15.0  # seconds without heartbeat before an agent is offline
    agent_grace: float = 120.0  # seconds an offline agent's chats wait before re-queueing
    visitor_grace: float = 300.0  # seconds a gone visitor keeps their place or chat
    # seconds a queued visitor may be disconnected and still be offered; past it they keep
    # their place but are passed over until they are back (a slot goes to someone there)
    absent_skip_s: float = 30.0
    lang_fallback: float = 60.0  # seconds before a visitor may get an agent not speaking their lang
    default_lang: str = "fr"
    retention_days: float = 30.0
    purge_every: float = 3600.0  # seconds between automatic purges (one process per period)
    frame_rate: float = 10.0  # frames per second per connection (agents: per open chat)
    frame_burst: int = 30
    max_conn_per_ip: int = 200
    sessions_per_ip_hour: int = 30
    sessions_per_token_hour: int = 10  # new chats per visitor token per hour
    max_frame: int = 65536  # bytes
    hello_timeout: float = 10.0  # seconds
    handshake_timeout: float = 10.0  # seconds for a new TCP connection to send its request headers
    idle_timeout: float = 60.0  # seconds without any frame (keepalive pings count)
    ack_replicas: int = 0  # replicas that must hold a write before it is acked or shown
    ack_timeout_ms: int = 500  # how long an ack waits for them (then: `unavailable`, resend)
    outbox_size: int = 512  # frames queued per connection before it is closed as too slow
    outbox_bytes: int = 8 << 20  # bytes queued per connection, likewise (8 MiB)
    send_timeout: float = 10.0  # seconds one socket write may take
    agent_session_hours: float = 12.0  # lifetime of an agent's login token/cookie
    tick: float = 1.0  # seconds between housekeeping runs (offers, liveness, matching)
    async_ttl_h: float = 72.0  # hours a chat left to be answered later (and its code) lives
    async_after_s: float = 600.0  # past this estimated wait, low-priority chats are offered
    # to be answered later first (surge mode); topics of at least this priority always queue live
    live_priority: int = 20
    code_tries: int = 10  # resume codes one address may try per 10 minutes
    reports_days: int = 400  # days the reports' hourly and daily figures are kept
    topics_file: Path | None = None
    topics: tuple[Topic, ...] = DEFAULT_TOPICS
    canned_file: Path | None = None  # the shared canned answers (TOML [[answer]] tables)
    canned: tuple[Canned, ...] = DEFAULT_CANNED
    # photos (docs/protocol.md, "Photos")
    upload_max_mb: float = 10.0  # MiB one upload may have
    uploads_per_session: int = 20  # photos one chat may receive, both sides together
    upload_store: str = "dir"  # "dir" (a directory) or "s3" (an S3-compatible bucket)
    upload_dir: Path | None = None  # None: <data_dir>/uploads
    s3_endpoint: str | None = None  # e.g. https://s3.fr-par.scw.cloud; None: AWS's own
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    # None: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (read by load, like every variable)
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    image_pool: str = "process"  # "process" or "thread": where photos are decoded and re-encoded
    # photos processed at once by one chatd process: one leaves the other cores to the relay
    # (docs/benchmarks.md, "Photos": 2 workers on 2 cores put the relay's p99 past 50 ms)
    image_workers: int = 1
    image_queue: int = 8  # photos waiting for a worker; past it an upload is answered 503
    log_level: str = "info"
    log_ips: bool = False  # write client addresses to logs (off: visitors are anonymous)
    cookie_secure: bool = False  # mark the session cookie Secure (behind HTTPS)
    extra: Mapping[str, str] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number of seconds > 0, got {raw!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"{name}: expected a number > 0, got {raw!r}")
    return value


def _int_in(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a whole number from {lo} to {hi}, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{name}: expected a whole number from {lo} to {hi}, got {raw!r}")
        return value
    return parse


def _bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        if raw not in choices:
            raise ConfigError(f"{name}: expected one of {', '.join(choices)}, got {raw!r}")
        return raw
    return parse


def _redis_url(name: str, raw: str) -> str:
    try:
        redis_url.parse(raw)
    except redis_url.BadRedisUrl as exc:
        shown = re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", raw)  # never a password on screen
        raise ConfigError(f"{name}: {exc}, got {shown!r}") from None
    return raw


def _origin(name: str, raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ConfigError(f"{name}: expected an origin such as https://www.example.fr, got {raw!r}")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _origins(name: str, raw: str) -> tuple[str, ...]:
    return tuple(_origin(name, o) for o in raw.split(",") if o.strip())


def _positive_number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name}: expected a number > 0, got {raw!r}")
    return value


def _url(name: str, raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}: expected a URL such as https://s3.example.fr, got {raw!r}")
    return raw.strip().rstrip("/")


def _bucket(name: str, raw: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", raw):
        raise ConfigError(f"{name}: expected an S3 bucket name (3-63 of a-z 0-9 . -), got {raw!r}")
    return raw


def _str(name: str, raw: str) -> str:
    if not raw:
        raise ConfigError(f"{name}: must not be empty")
    return raw


def _secret(name: str, raw: str) -> str:
    if len(raw) < 16:
        raise ConfigError(f"{name}: must be at least 16 characters long")
    return raw


def _prefix(name: str, raw: str) -> str:
    if not raw or not all(c.isalnum() or c in "_-." for c in raw):
        raise ConfigError(f"{name}: expected letters, digits, '_', '-' or '.', got {raw!r}")
    return raw


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "host": _str,
    "port": _int_in(0, 65535),
    "workers": _int_in(1, 64),
    "redis_url": _redis_url,
    "data_dir": lambda n, r: Path(_str(n, r)),
    "key_prefix": _prefix,
    "secret": _secret,
    "secret_previous": lambda n, r: tuple(_secret(n, x) for x in r.split(",") if x),
    "public_url": _origin,
    "allowed_origins": _origins,
    "offer_timeout": _positive_float,
    "assign_mode": _choice("offer", "direct"),
    "heartbeat_ttl": _positive_float,
    "agent_grace": _positive_float,
    "visitor_grace": _positive_float,
    "absent_skip_s": _positive_float,
    "lang_fallback": _positive_float,
    "default_lang": _str,
    "retention_days": _positive_float,
    "purge_every": _positive_float,
    "frame_rate": _positive_float,
    "frame_burst": _int_in(1, 1_000_000),
    "max_conn_per_ip": _int_in(1, 10_000_000),
    "sessions_per_ip_hour": _int_in(1, 10_000_000),
    "sessions_per_token_hour": _int_in(1, 10_000_000),
    "max_frame": _int_in(1024, 16 * 1024 * 1024),
    "hello_timeout": _positive_float,
    "handshake_timeout": _positive_float,
    "idle_timeout": _positive_float,
    "ack_replicas": _int_in(0, 16),
    "ack_timeout_ms": _int_in(1, 60_000),
    "outbox_size": _int_in(8, 1_000_000),
    "outbox_bytes": _int_in(65536, 1 << 30),
    "send_timeout": _positive_float,
    "agent_session_hours": _positive_float,
    "tick": _positive_float,
    "async_ttl_h": _positive_float,
    "async_after_s": _positive_float,
    "live_priority": _int_in(-1_000_000, 1_000_000),
    "code_tries": _int_in(1, 1_000_000),
    "reports_days": _int_in(1, 36_500),
    "topics_file": lambda n, r: Path(_str(n, r)),
    "canned_file": lambda n, r: Path(_str(n, r)),
    "upload_max_mb": _positive_number,
    "uploads_per_session": _int_in(1, 10_000),
    "upload_store": _choice("dir", "s3"),
    "upload_dir": lambda n, r: Path(_str(n, r)),
    "s3_endpoint": _url,
    "s3_bucket": _bucket,
    "s3_region": _str,
    "s3_access_key": _str,
    "s3_secret_key": _str,
    "image_pool": _choice("process", "thread"),
    "image_workers": _int_in(1, 64),
    "image_queue": _int_in(0, 10_000),
    "log_level": _choice("debug", "info", "warning", "error"),
    "log_ips": _bool,
    "cookie_secure": _bool,
}


def env_name(setting: str) -> str:
    return "CHATD_" + setting.upper()


def load(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from the environment, then command-line ``overrides`` (already typed or
    raw strings; ``None`` means "not given"). Raises ``ConfigError``."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, parse in _PARSERS.items():
        raw = environ.get(env_name(name))
        if raw is not None:
            values[name] = parse(env_name(name), raw)
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in _PARSERS:
            raise ConfigError(f"unknown setting {name!r}")
        flag = "--" + name.replace("_", "-")
        values[name] = _PARSERS[name](flag, str(value))
    # the S3 credentials may also come under the names every S3 client knows
    for setting, aws in (("s3_access_key", "AWS_ACCESS_KEY_ID"),
                         ("s3_secret_key", "AWS_SECRET_ACCESS_KEY")):
        if setting not in values and environ.get(aws):
            values[setting] = environ[aws]
    settings = Settings(**values)
    _check_uploads(settings)
    if settings.topics_file is not None:
        settings = settings.replace(topics=load_topics(settings.topics_file))
    if settings.canned_file is not None:
        name = env_name("canned_file")
        items = read_tables(settings.canned_file, name, "answer")
        try:
            canned = canned_from_tables(items)
        except CannedError as exc:
            raise ConfigError(f"{name}: {settings.canned_file}: {exc}") from None
        settings = settings.replace(canned=canned)
    return settings


def _check_uploads(settings: Settings) -> None:
    """The photo store can work: an S3 store needs its bucket and its client library."""
    if settings.upload_store != "s3":
        return
    if not settings.s3_bucket:
        raise ConfigError("CHATD_UPLOAD_STORE=s3 needs CHATD_S3_BUCKET")
    if bool(settings.s3_access_key) != bool(settings.s3_secret_key):
        raise ConfigError("CHATD_S3_ACCESS_KEY and CHATD_S3_SECRET_KEY (or AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY) go together")
    try:
        import aiobotocore  # noqa: F401
    except ImportError:
        raise ConfigError("CHATD_UPLOAD_STORE=s3 needs aiobotocore: pip install 'chatd[s3]'") from None


def read_tables(path: Path, setting: str, table: str) -> list[Any]:
    """The ``[[table]]`` entries of a TOML settings file; a one-line ConfigError otherwise."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{setting}: {path} is not valid TOML: {exc}") from None
    items = data.get(table)
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise ConfigError(f"{setting}: {path} has no [[{table}]] tables")
    return items


def _alternatives(raw: Any, name: str, topic: str) -> tuple[dict[str, Any], ...]:
    """``[[topic.alternatives]]``: label (text, or a table of texts by language) and one of
    tel, sms or url (https only): checked here, so the widget shows only what is valid."""
    if not isinstance(raw, list):
        raise ConfigError(f"{name}: topic {topic!r}: alternatives must be a list of tables")
    out = []
    for a in raw:
        label = a.get("label") if isinstance(a, dict) else None
        if not (isinstance(label, str) and label) and not (
                isinstance(label, dict) and label and all(isinstance(v, str) for v in label.values())):
            raise ConfigError(f"{name}: topic {topic!r}: each alternative needs a label")
        ways = [k for k in ("tel", "sms", "url") if k in a]
        if len(ways) != 1 or not isinstance(a[ways[0]], str):
            raise ConfigError(f"{name}: topic {topic!r}: each alternative needs one of tel, sms, url")
        if ways[0] == "url" and not a["url"].startswith("https://"):
            raise ConfigError(f"{name}: topic {topic!r}: alternative urls must start with https://")
        out.append({"label": label, ways[0]: a[ways[0]]})
    return tuple(out)


def load_topics(path: Path) -> tuple[Topic, ...]:
    """Topics from a TOML file: ``[[topic]]`` tables with id, label_fr, label_en, label_es,
    label_de, label_it, label_fr_falc (each missing label is the French one), priority, weight,
    reserved, retention_days. ``general`` is added when missing, as the contract promises it."""
    name = env_name("topics_file")
    items = read_tables(path, name, "topic")
    topics: list[Topic] = []
    seen: set[str] = set()
    for i, item in enumerate(items, 1):
        try:
            topic = Topic(
                id=str(item["id"]), label_fr=str(item.get("label_fr", item["id"])),
                label_en=str(item.get("label_en", item.get("label_fr", item["id"]))),
                label_es=str(item.get("label_es", "")), label_de=str(item.get("label_de", "")),
                label_it=str(item.get("label_it", "")),
                label_fr_falc=str(item.get("label_fr_falc", "")),
                priority=int(item.get("priority", 0)), weight=int(item.get("weight", 1)),
                reserved=int(item.get("reserved", 0)),
                retention_days=(float(item["retention_days"]) if "retention_days" in item else None),
                alternatives=_alternatives(item.get("alternatives", []), name, str(item["id"])),
            )
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{name}: topic #{i} in {path} needs an id and integer priority/weight/reserved") from None
        if not topic.id.replace("_", "").replace("-", "").isalnum() or len(topic.id) > 32:
            raise ConfigError(f"{name}: topic id {topic.id!r} must be 1-32 letters, digits, '_' or '-'")
        if topic.weight < 1 or topic.reserved < 0:
            raise ConfigError(f"{name}: topic {topic.id!r} needs weight >= 1 and reserved >= 0")
        if topic.retention_days is not None and not topic.retention_days > 0:
            raise ConfigError(f"{name}: topic {topic.id!r} needs retention_days > 0")
        if topic.id in seen:
            raise ConfigError(f"{name}: topic {topic.id!r} is listed twice")
        seen.add(topic.id)
        topics.append(topic)
    if "general" not in seen:
        topics.append(next(t for t in DEFAULT_TOPICS if t.id == "general"))
    return tuple(topics)
