"""Fieldradio's wire formats and protocol state machines, with no I/O.

Bytes and times go in, events and bytes come out; the server and the client
drive these classes from their own event loops (see STYLE.md).

Exceptions: every decoder here raises :class:`ptt_protocol.errors.ProtocolError`
(or a subclass) on bad input, and nothing else.
"""
