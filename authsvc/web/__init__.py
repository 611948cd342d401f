"""The browser's side of authsvc: the hosted HTML pages of sign-in, consent and sign-out."""

__all__: list[str] = []
