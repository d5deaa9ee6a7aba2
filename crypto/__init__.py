"""Fieldradio's end-to-end encryption: pure functions over ``cryptography``.

No I/O and no clock: times are passed in. See docs/security.md.
"""
