"""Server configuration: a TOML file, overridden by command-line flags.

Every key has an embedded default, so `ptt-server` with no file runs a working
server. Unknown keys and wrong types are refused with the key's name, so a typo
in a config file never silently falls back to a default.
"""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import platformdirs

DATABASE_NAME = "fieldradio.db"
"""The SQLite store, in the data directory."""


def org_root_path(data_dir: Path) -> Path:
    """The pinned org root public key (``ptt-server --org-root`` installs it)."""
    return data_dir / "org" / "root.pub"


class ConfigError(ValueError):
    """The configuration file or a flag is invalid; the message says which key and how to fix it."""


class ServerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """All server settings; field names are the TOML keys (table ``[server]``)."""

    listen_host: str = "0.0.0.0"
    listen_port: int = 7300
    media_host: str = ""
    """Address the UDP relay binds; empty means the same as ``listen_host``."""
    media_port: int = 7301
    public_host: str = ""
    """Host name clients are told to use (bundles, UDP); empty means ``listen_host`` or 127.0.0.1."""
    data_dir: str = ""
    """Database, TLS certificate and organisation files; empty means the platform's data dir."""
    tls_cert: str = ""
    tls_key: str = ""
    metrics_port: int = 0
    """Prometheus metrics on 127.0.0.1:PORT; 0 turns the endpoint off (metrics are still counted)."""
    heartbeat_interval: float = 15.0
    idle_timeout: float = 45.0
    max_pending_logins: int = 256
    """Connections held before they log in; past it new ones are closed before TLS (fairly
    per source: see docs/operations.md). About 300 KB each while in the TLS handshake."""
    login_timeout: float = 10.0
    """Seconds from TCP accept to a verified login (TLS, WebSocket handshake, Hello, Login)."""
    floor_queue_capacity: int = 8
    floor_t1_end_of_media: float = 4.0
    """TS 24.380 T1: a holder silent this long loses the floor."""
    floor_t2_officer: float = 30.0
    """TS 24.380 T2 (stop talking) for officers; dispatchers get ``floor_t2_dispatcher``."""
    floor_t2_dispatcher: float = 60.0
    floor_t3_grace: float = 3.0
    """TS 24.380 T3: grace after "media burst too long" before the floor is taken back."""
    recording_retention_s: float = 24 * 3600.0
    message_retention_s: float = 7 * 24 * 3600.0
    rate_floor_per_s: float = 5.0
    rate_messages_per_s: float = 10.0
    rate_control_bytes_per_s: float = 256 * 1024.0
    rate_emergency_per_s: float = 1.0
    """Emergency broadcasts per user and second; presses past the limit are recorded at once and
    their newest state goes out when the limit allows (an emergency is never refused)."""
    rate_emergency_burst: int = 3
    """Emergency broadcasts a user may send back to back before ``rate_emergency_per_s`` applies."""
    turn_urls: list[str] = msgspec.field(default_factory=list)
    """TURN servers radios fall back to for private calls when no direct path works
    (``turn:HOST:PORT?transport=udp``); empty: direct paths only. Never a public server."""
    turn_secret: str = ""
    """The TURN REST shared secret (coturn's ``static-auth-secret``): the relay hands each
    caller and callee credentials made with it, valid ``turn_credential_ttl`` seconds."""
    turn_credential_ttl: float = 3600.0
    call_ring_timeout: float = 30.0
    """Seconds a private call rings (manual answer) before it ends unanswered."""
    cluster: str = ""
    """NATS URL (``nats://HOST:PORT``, several comma-separated) of the bus that joins this node
    to the others; empty: one node on its own (the default)."""
    cluster_credentials_file: str = ""
    """File holding this node's bus login, one line ``USER:PASSWORD`` or a token (mode 0600;
    never logged); empty: the bus is joined without credentials (a bus anyone can publish on
    steers every floor: see docs/security.md, section 2b)."""
    cluster_ca_file: str = ""
    """CA certificate (PEM) the bus's TLS certificate is checked against (``tls://`` URLs);
    empty: the system's CAs."""
    node_name: str = ""
    """This node's name on the bus (unique in the cluster); empty: the host name and the
    control port."""
    store: str = ""
    """PostgreSQL connection URL (``postgresql://USER@HOST:PORT/DB``) of the store the cluster's
    nodes share; empty: the embedded SQLite file in the data directory (the default)."""
    log_level: str = "INFO"

    def resolved_data_dir(self) -> Path:
        return (
            Path(self.data_dir) if self.data_dir else Path(platformdirs.user_data_dir("fieldradio"))
        )

    def client_host(self) -> str:
        if self.public_host:
            return self.public_host
        return "127.0.0.1" if self.listen_host in ("0.0.0.0", "::", "") else self.listen_host


class _ConfigFile(msgspec.Struct, forbid_unknown_fields=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)


def load_config(path: Path | None) -> ServerConfig:
    """Read ``path`` (TOML) or return the defaults when ``path`` is None."""
    if path is None:
        return ServerConfig()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        config = msgspec.toml.decode(raw, type=_ConfigFile).server
    except msgspec.ValidationError as exc:
        raise ConfigError(
            f"config file {path}: {exc}; see docs/operations.md for the keys"
        ) from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    validate(config)
    return config


def validate(config: ServerConfig) -> None:
    """Refuse values that would make the server misbehave, naming the key."""
    for field in msgspec.structs.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(
                f"{field.name} = nan is not a number: give a value in seconds or per second"
            )
    for name in ("message_retention_s", "recording_retention_s"):
        # The server prunes at start: 0 or less deletes every stored text or recording.
        if getattr(config, name) <= 0:
            raise ConfigError(
                f"{name} = {getattr(config, name)} would delete everything stored at start: "
                f"give seconds greater than 0 (7 days is 604800, or inf to keep forever)"
            )
    for name in ("rate_floor_per_s", "rate_messages_per_s", "rate_control_bytes_per_s"):
        if getattr(config, name) <= 0:
            raise ConfigError(f"{name} must be greater than 0 (it is a rate per second)")
    if config.floor_queue_capacity < 0:
        raise ConfigError("floor_queue_capacity must be 0 or more (0: no queue)")
    for name in ("listen_port", "media_port", "metrics_port"):
        port = getattr(config, name)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{name} = {port} is not a port number (0-65535)")
    for name in ("heartbeat_interval", "idle_timeout", "login_timeout"):
        if getattr(config, name) <= 0:
            raise ConfigError(f"{name} must be greater than 0")
    if config.rate_emergency_per_s <= 0:
        raise ConfigError("rate_emergency_per_s must be greater than 0 (alerts are never refused)")
    if config.rate_emergency_burst < 1:
        raise ConfigError("rate_emergency_burst must be at least 1")
    if config.max_pending_logins < 1:
        raise ConfigError(
            f"max_pending_logins = {config.max_pending_logins}: must be at least 1"
            " (each costs about 300 KB during the TLS handshake; 256 is the default)"
        )
    if config.idle_timeout <= config.heartbeat_interval:
        raise ConfigError("idle_timeout must be longer than heartbeat_interval")
    _validate_calls(config)
    _validate_cluster(config)
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ConfigError("set both tls_cert and tls_key, or neither (a self-signed pair is made)")


_TURN_SCHEMES = ("turn:", "turns:", "stun:")


def _validate_cluster(config: ServerConfig) -> None:
    urls = [url.strip() for url in config.cluster.split(",") if url.strip()]
    for url in urls:
        if not url.startswith(("nats://", "tls://")):
            raise ConfigError(f"cluster: {url!r} is not a NATS URL (nats://HOST:PORT)")
        if "@" in url:
            # A password in the URL would be in every log line that names the bus.
            raise ConfigError(
                "cluster: a URL holds a user or password: put them in cluster_credentials_file"
            )
    for name in ("cluster_credentials_file", "cluster_ca_file"):
        if getattr(config, name) and not config.cluster:
            raise ConfigError(f"{name} is set but cluster is not: it is the cluster bus's")
    if config.cluster_ca_file and not all(url.startswith("tls://") for url in urls):
        raise ConfigError(
            "cluster_ca_file is set: every cluster URL must be tls://HOST:PORT (nats:// is"
            " plain text)"
        )
    if config.store and not config.store.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"store: {config.store!r} is not a PostgreSQL URL (postgresql://USER@HOST:PORT/DB);"
            " leave it empty for the embedded SQLite store"
        )
    if config.cluster and not config.store:
        raise ConfigError(
            "cluster is set but store is not: the nodes of a cluster share one PostgreSQL"
            " store (--store postgresql://...)"
        )


def _validate_calls(config: ServerConfig) -> None:
    for url in config.turn_urls:
        if not url.startswith(_TURN_SCHEMES) or len(url) > 255:
            raise ConfigError(
                f"turn_urls: {url!r} is not a TURN or STUN URL (turn:HOST:PORT?transport=udp)"
            )
    if config.turn_urls and len(config.turn_secret) < 16:
        raise ConfigError(
            "turn_secret must be set (at least 16 characters, coturn's static-auth-secret)"
            " when turn_urls is"
        )
    if not 60 <= config.turn_credential_ttl <= 86400:
        raise ConfigError("turn_credential_ttl must be between 60 and 86400 seconds")
    if not 5 <= config.call_ring_timeout <= 300:
        raise ConfigError("call_ring_timeout must be between 5 and 300 seconds")
