"""Persistent state: users, clients, sessions and refresh tokens."""
