"""Persistent state: users, clients, sessions and refresh tokens."""

__all__: list[str] = []
