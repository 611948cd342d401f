"""Signing keys: model, generation, timetable, stores and the manager."""

__all__: list[str] = []
