"""Grant handlers: one module per grant type, each ``handle(...) -> TokenResponse``."""
