"""The exception tree of ``ptt_protocol``.

- :class:`ProtocolError`: bytes from the network that are not a valid message
  (bad size, unknown type or version, failed authentication, replay).
  Never sent back to the peer in detail: log it, count it, drop the input.
"""


class ProtocolError(ValueError):
    """Input from the network was rejected; the message says why."""
