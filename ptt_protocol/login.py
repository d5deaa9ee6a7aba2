"""What a device signs to log in.

The server sends a fresh random nonce (``Hello``); the device signs this
statement with its credential's Ed25519 key. Binding the server's TLS
certificate fingerprint stops a man in the middle with another certificate from
relaying the signature to the real server, and the client nonce makes the
statement unique even if a server ever repeated a nonce.
"""

LOGIN_CONTEXT = b"fieldradio login v1\x00"


def login_statement(server_nonce: bytes, client_nonce: bytes, tls_fingerprint: bytes) -> bytes:
    """The exact bytes a device signs in ``Login.signature``."""
    return LOGIN_CONTEXT + server_nonce + client_nonce + tls_fingerprint
