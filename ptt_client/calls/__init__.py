"""Private calls' media: one-to-one, full duplex, over WebRTC (aiortc).

- :mod:`ptt_client.calls.media` - :class:`CallMedia`, one call's peer connection;
- :mod:`ptt_client.calls.ice` - :class:`IceSettings` and the aiortc configuration from them;
- :mod:`ptt_client.calls.sdp_checks` - what we refuse in the other radio's SDP, and its DTLS
  fingerprints as aiortc reads them;
- :mod:`ptt_client.calls.opus_track` - the send side (the radio's own Opus encoder);
- :mod:`ptt_client.calls.playout` - the receive side (jitter buffer, FEC, concealment), pure;
- :mod:`ptt_client.calls.aiortc_patches` - every reach into aiortc/aioice internals.

Errors: :class:`CallMediaError` (:mod:`ptt_client.calls.errors`).
"""

from ptt_client.calls.errors import CallMediaError
from ptt_client.calls.ice import IceServer, IceSettings
from ptt_client.calls.media import CallMedia
from ptt_client.calls.sdp_checks import check_remote_sdp, sdp_fingerprints

__all__ = [
    "CallMedia",
    "CallMediaError",
    "IceServer",
    "IceSettings",
    "check_remote_sdp",
    "sdp_fingerprints",
]
