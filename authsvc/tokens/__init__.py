"""Tokens: issuing (issuer), checking our own (validation, inspection), login sessions (families)."""

__all__: list[str] = []
