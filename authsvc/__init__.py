"""authsvc: an OAuth 2.0 token service and the verifier its resource servers use.

The package root imports nothing heavy, so ``authsvc.verifier`` works with the
base install (httpx, cryptography, joserfc) and no server dependencies.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
