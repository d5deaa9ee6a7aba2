"""Names the console can trust: from users' credentials, checked against the org root.

The server lists who is enrolled (``control.EnrolledUsers``) and says names in presence
updates, but a name on the dispatcher's screen decides who gets an order: it comes from the
user's credential, which the client verifies against the org root before keeping it
(``ptt_client.e2e.Keyring.add_credentials``). Credentials are asked for in small requests,
one at a time, so a large organisation never fills the server's queue to this console.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import TYPE_CHECKING, Final

from ptt_client import channel_admin
from ptt_protocol import control
from tui.state import NamesVerified

if TYPE_CHECKING:
    from ptt_client.client import RadioClient

NAMES_PER_REQUEST: Final = 100
"""User ids per CredentialRequest (about 140 KB of credentials in the answer)."""


async def verified_names(client: RadioClient, user_ids: Iterable[str]) -> NamesVerified:
    """The names of ``user_ids`` from their verified credentials (asked for if not held).

    A user without a valid credential (revoked, expired, unknown) is left out.
    """
    wanted = list(dict.fromkeys(user_ids))
    held = client.keyring.credentials
    missing = [user for user in wanted if user not in held]
    for start in range(0, len(missing), NAMES_PER_REQUEST):
        chunk = tuple(missing[start : start + NAMES_PER_REQUEST])
        await channel_admin.send_checked(
            client, [control.CredentialRequest(user_ids=chunk)], "the credential request"
        )
    return NamesVerified(tuple((user, held[user].display_name) for user in wanted if user in held))


class NameChecker:
    """Asks once for each user whose name the console has not verified yet."""

    def __init__(self, client: RadioClient, apply: Callable[[object], object]) -> None:
        self.client = client
        self.apply = apply
        self.asked: set[str] = set()

    def check(self, user_ids: Iterable[str], verified: Collection[str]) -> Awaitable[None] | None:
        """The work that verifies the new ones among ``user_ids`` (None if there are none)."""
        new = [u for u in dict.fromkeys(user_ids) if u not in verified and u not in self.asked]
        if not new:
            return None
        self.asked.update(new)
        return self._verify(new)

    async def _verify(self, user_ids: list[str]) -> None:
        try:
            self.apply(await verified_names(self.client, user_ids))
        except BaseException:
            self.asked.difference_update(user_ids)  # asked again on the next mention
            raise
