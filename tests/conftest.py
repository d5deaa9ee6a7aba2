"""Fixtures shared by every test package: a real organisation on disk and a running server."""

from tests.orgfixture import org, server

__all__ = ["org", "server"]
