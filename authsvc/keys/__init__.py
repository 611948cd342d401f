"""Signing keys: model, generation, timetable, stores and the manager."""
