"""Tokens: signing (issuer), checking our own (validation), families (sessions)."""
