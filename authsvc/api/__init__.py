"""Thin HTTP: parse, call the service layer, serialise."""
