"""Browser sign-in: the authorization code flow with PKCE and OpenID Connect.

``requests`` reads and checks an authorization request (from /authorize or
/par); ``redirects`` matches redirect URIs and builds the answers sent back to
them; ``cookies`` names the cookies and binds the CSRF token to one; ``flow``
decides each step (sign in, consent, code) against the stores; the HTTP glue
is ``authsvc.api.authorize``, ``api.par`` and ``api.logout``.
"""

__all__: list[str] = []
