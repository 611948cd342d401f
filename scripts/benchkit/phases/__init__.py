"""The phases of a run, in the order ``benchkit.runner`` runs them, one module each.

    inproc       in-process sign/verify beside raw cryptography; one argon2 hash
    generator    the load generator's own ceiling (a static responder)
    per_alg      per algorithm: one authsvc server, primed (user, client, live refresh families)
    ceilings     the bare FastAPI rows (constant bytes, raw-body POST, request.form(), PyJWT)
    authsvc_rows authsvc's rows: JWKS 200/304, client_credentials, /users/me, refresh, password
    authorization_code  browser sign-in: code redemption (PKCE, public client) on authsvc and the
                 peer, codes minted before the timed run; password hashes per sign-in
    event_loop   JWKS p99 alone and while password logins run
    postgres     authsvc's refresh on PostgreSQL (--postgres-url), one more server per alg
    peer         node-oidc-provider: JWKS, client_credentials, refresh (rotating and not),
                 authorization_code; then on its Redis adapter: client_credentials, refresh
    growth       refresh with few and with many live refresh-token rows
    memory       server RSS after few and after many refreshes

Each module's ``run`` takes the ``Bench`` (``benchkit.context``) and adds its rows to its report.
"""

__all__: list[str] = []
