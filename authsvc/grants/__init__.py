"""Grant handlers: one module per grant type, each ``handle(...) -> TokenResponse``."""

__all__ = ["GRANT_TYPES"]

#: The grant types the token endpoint serves, in the order discovery lists them.
GRANT_TYPES: tuple[str, ...] = ("password", "refresh_token", "client_credentials")
