"""One control connection's protocol state on the relay, without I/O.

Like python-websockets' ``ServerProtocol`` or h11's ``Connection``: frames go in
(:meth:`ServerSessionCore.receive`), a verdict comes out - a message to dispatch to its
handler, the login to verify, or a :class:`~ptt_server.policy.Refusal` to answer - and the
WebSocket code only moves bytes and runs what it is told. Time is an input (``now``, loop
seconds), so a test drives the login handshake, the legal messages in each phase, the
refusals with their codes and every rate limit in microseconds, with no server running.

Phases: ``AWAITING_LOGIN`` (Hello sent; only a Login is legal, and only within the login
timeout), ``LOGGED_IN`` (the rules of :data:`ptt_server.policy.RULES` and the rate budgets
apply), ``CLOSED`` (everything is refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from crypto.errors import CredentialError, CryptoError
from crypto.identity import Credential, TrustAnchor
from ptt_protocol import control
from ptt_protocol.errors import ProtocolError
from ptt_protocol.login import login_statement
from ptt_server.policy import Budget, Refusal, authorise
from ptt_server.ratelimit import TokenBucket

__all__ = [
    "Dispatch",
    "LoginAttempt",
    "Phase",
    "RateLimits",
    "ServerSessionCore",
    "credential_error_code",
]

_CREDENTIAL_ERROR_CODES = {
    "expired": control.ERROR_CREDENTIAL_EXPIRED,
    "not_yet_valid": control.ERROR_CREDENTIAL_EXPIRED,
    "revoked": control.ERROR_CREDENTIAL_REVOKED,
    "foreign_root": control.ERROR_UNKNOWN_ROOT,
}


def credential_error_code(exc: CredentialError) -> str:
    """The control error code for a refused credential (expired, revoked, foreign...)."""
    return _CREDENTIAL_ERROR_CODES.get(exc.reason, control.ERROR_AUTH_FAILED)


class Phase(Enum):
    AWAITING_LOGIN = "awaiting login"
    LOGGED_IN = "logged in"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Per-session budgets: tokens per second (bursts of twice that, three times for
    messages, as the server has always allowed)."""

    floor_per_s: float
    messages_per_s: float
    control_bytes_per_s: float


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A legal, affordable message for its handler."""

    message: control.Message


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """A Login whose credential and signature verified: check the enrolment, then call
    :meth:`ServerSessionCore.logged_in`."""

    credential: Credential


class ServerSessionCore:
    """The protocol state of one control connection (pure)."""

    def __init__(
        self,
        nonce: bytes,
        trust: TrustAnchor,
        tls_fingerprint: bytes,
        limits: RateLimits,
        now: float,
        login_timeout: float,
    ) -> None:
        self.phase = Phase.AWAITING_LOGIN
        self.nonce = nonce
        self._trust = trust
        self._tls_fingerprint = tls_fingerprint
        self._login_deadline = now + login_timeout
        self.credential: Credential | None = None
        self.floor_limit = TokenBucket(limits.floor_per_s, limits.floor_per_s * 2, now)
        self.message_limit = TokenBucket(limits.messages_per_s, limits.messages_per_s * 3, now)
        self.byte_limit = TokenBucket(
            limits.control_bytes_per_s, limits.control_bytes_per_s * 2, now
        )

    def hello(self, server_time: float) -> control.Hello:
        """The first message: the login challenge."""
        return control.Hello(server_nonce=self.nonce, server_time=server_time)

    def login_expired(self, now: float) -> bool:
        """The client did not log in within the login timeout."""
        return self.phase is Phase.AWAITING_LOGIN and now >= self._login_deadline

    def receive(
        self, frame: bytes | str, now: float, wall_now: float
    ) -> Dispatch | LoginAttempt | Refusal:
        """Judge one received frame. A refusal before login also ends the connection
        (:attr:`phase` is ``CLOSED`` then)."""
        if self.phase is Phase.CLOSED:
            return Refusal(control.ERROR_BAD_MESSAGE, "the connection is closing")
        if isinstance(frame, str):
            return self._refuse(control.ERROR_BAD_MESSAGE, "binary frames only")
        if self.phase is Phase.LOGGED_IN and not self.byte_limit.take(now, len(frame)):
            return Refusal(control.ERROR_RATE_LIMITED, "too many bytes: slow down")
        try:
            message = control.decode(frame)
        except ProtocolError as exc:
            return self._refuse(control.ERROR_BAD_MESSAGE, str(exc))
        if self.phase is Phase.AWAITING_LOGIN:
            if self.login_expired(now):
                return self._refuse(control.ERROR_AUTH_FAILED, "log in sooner: timed out")
            if not isinstance(message, control.Login):
                return self._refuse(control.ERROR_BAD_MESSAGE, "log in first")
            return self._verify_login(message, wall_now)
        if isinstance(message, control.Login):
            return Refusal(control.ERROR_BAD_MESSAGE, "already logged in")
        assert self.credential is not None
        rule = authorise(self.credential.role, message)
        if isinstance(rule, Refusal):
            return rule
        if rule.budget is Budget.FLOOR and not self.floor_limit.take(now):
            return Refusal(control.ERROR_RATE_LIMITED, "too many floor requests: slow down")
        if rule.budget is Budget.MESSAGES and not self.message_limit.take(now):
            return Refusal(
                control.ERROR_RATE_LIMITED, f"too many requests to {rule.action}: slow down"
            )
        return Dispatch(message)

    def _verify_login(self, message: control.Login, wall_now: float) -> LoginAttempt | Refusal:
        try:
            credential = self._trust.verify_credential(message.credential, wall_now)
            credential.verify_signature(
                login_statement(self.nonce, message.client_nonce, self._tls_fingerprint),
                message.signature,
            )
        except CredentialError as exc:
            return self._refuse(credential_error_code(exc), str(exc))
        except CryptoError as exc:
            return self._refuse(control.ERROR_AUTH_FAILED, f"login refused: {exc}")
        return LoginAttempt(credential)

    def logged_in(self, credential: Credential) -> None:
        """The enrolment check passed: the session is live."""
        if self.phase is not Phase.AWAITING_LOGIN:
            raise RuntimeError(f"logged_in() in phase {self.phase.value}")
        self.credential = credential
        self.phase = Phase.LOGGED_IN

    def refuse_login(self) -> None:
        """The enrolment check failed: nothing more is accepted."""
        self.phase = Phase.CLOSED

    def close(self) -> None:
        self.phase = Phase.CLOSED

    def _refuse(self, code: str, text: str) -> Refusal:
        if self.phase is Phase.AWAITING_LOGIN:
            self.phase = Phase.CLOSED  # a bad first message ends the connection
        return Refusal(code, text)
