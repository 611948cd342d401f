"""Thin HTTP: parse, call the service layer, serialise."""

__all__: list[str] = []
