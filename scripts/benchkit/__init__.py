"""Measure authsvc beside its ceilings, in one run, on one machine.

    python scripts/bench.py                  # the full run (about 8 minutes on 2 cores, all peers)
    python scripts/bench.py --smoke          # every code path, tiny counts (tests use it)
    python scripts/bench.py --database-url postgresql://user@host/scratch_db
    python scripts/bench.py --postgres-url postgresql://user@host/scratch_db   # + ALG.pg.refresh

What is measured, per signing algorithm (RS256 and EdDSA, one server each):

* ceilings: a bare FastAPI app served exactly like ``authsvc serve`` (uvicorn,
  same options, same core): GET of constant bytes (the JWKS body), POST of a
  form parsed from the raw body (``parse_qsl``, what authsvc does) and, when
  python-multipart is installed, with Starlette's ``request.form()``; and
  GET of a route that only decodes the access token with PyJWT;
* authsvc: GET /.well-known/jwks.json (200 and 304), POST /token with the
  client_credentials, refresh_token and password grants (client_secret_basic
  of one confidential client), GET /users/me; the browser sign-in's
  authorization_code grant (a public ``--first-party`` client, PKCE; codes
  minted before the timed run by GET /authorize with the SSO cookie of one
  sign-in through the hosted page, each redeemed once), and the password
  hashes one sign-in costs (the server's CPU time over a few sign-ins);
* DPoP (RFC 9449), each right after its bearer row on the same server:
  client_credentials, rotating refresh and /users/me with a fresh proof per
  request (signed before the timed run with the row's alg), on authsvc and on
  the peer (its userinfo endpoint as the protected resource); every row's
  server CPU per request, and the DPoP rows' extra CPU against one raw verify
  (``phases/dpop.py``, ``dpop_proofs.py``);
* in-process: ``authsvc.tokens.issuer.sign`` and ``authsvc.verifier``'s
  ``verify`` beside raw ``cryptography`` sign/verify with the same key, and
  ``authsvc.dpop.check_proof``;
* the peer, node-oidc-provider (``scripts/bench_peer``, optional: run
  ``cd scripts/bench_peer && npm ci`` once), on the same core with the
  same generator: JWKS, client_credentials, refresh_token, authorization_code
  (its codes minted in its own process, through its models); then the same
  peer on its Redis adapter (ioredis, ``--redis-url``, default database 13,
  keys under a prefix of the run's that the peer deletes at its start and
  exit): client_credentials and refresh, rotating or not (``ALG.peer_redis.*``;
  reported as skipped, with the reason, when Redis does not answer);
* with ``--postgres-url`` (a scratch PostgreSQL database), one more authsvc
  server per alg on it for the rotating refresh row (``ALG.pg.refresh``), so
  that issue 18's targets (refresh ≥ 1.0x the peer on Redis, ≥ 0.8x the peer
  in memory, p99 ≤ 2x p50; on SQLite and on PostgreSQL) are judged in one run;
* event-loop health (JWKS p99 while 4 password logins run), growth (refresh
  latency with few and with many live refresh-token rows), memory (server RSS
  after few and after many refreshes).

``--smoke`` runs every path with tiny counts, the peer included when it is
installed (in memory, and on Redis when Redis answers).

Every HTTP figure is reported with its ratio to its ceiling: the bare GET for
GET routes, the bare raw-body form POST for POST routes, raw crypto for the
in-process rows. The server is pinned to core 1 (``taskset -c 1``) and the
load generator to core 0 when the machine has two cores or more. ``wrk``
(``-t1 -c32``) is used when installed, else an httpx/asyncio generator; the
generator's own ceiling is measured against a trivial static responder, and
rows it cannot separate from that ceiling are marked generator-bound.

Refresh tokens rotate, so each posted refresh token must be live and unspent:
the bench logs in K times (K = connections + 16 password logins, one family
each) and the load generator chains each family: every response's new
refresh token is queued and posted later, so every request spends a token the
server minted moments before and never saw again.

Defaults of the full run (about 8 minutes on 2 cores with the peer on both
adapters, ``--postgres-url`` and the interleaved refresh rounds; every figure is
printed with the run): 3 s per load run (``--duration 10`` matches ANCHORS.md), 32
connections; growth at 10,000 and 1,000,000 live refresh-token rows (filler
rows inserted straight into ``sessions``/``refresh_tokens`` in batches of
50,000, their columns taken from ``authsvc.store.sql.tables``;
``--growth-rows``); memory after 1,000 and up to 100,000 refreshes, each
run capped by a time budget (``--memory-seconds``; by default what keeps the whole
run near 4.5 minutes, 30 to 150 s), so the second figure says how many
refreshes fit. Password hashing is argon2id m=19456 KiB, t=2, p=1 (the OWASP
minimum, authsvc's default). With ``--database-url`` (a scratch PostgreSQL
database) every server shares it; bench users and clients stay, filler rows are
deleted at the end. ``--postgres-url`` only adds the ``ALG.pg.refresh`` servers
(their users, clients and refresh tokens stay there too).

Results: a markdown table and a JSON file in ``--out`` (default
``bench-results/<UTC time>/``, git-ignored): ``bench.md`` and ``bench.json``.

The package, one job per module:

    config.py        constants, the full and smoke profiles, the parsed options
    cores.py         where things run (taskset pinning)
    load.py          load generation: wrk with generated Lua scripts, or httpx/asyncio
    servers.py       the processes started: authsvc, the ceilings, the static responder, the peer
    ceiling_apps.py  what runs inside the ceiling processes (bare FastAPI, static responder)
    seeding.py       a user and a client through the CLI, login families, warm-up
    browser.py       a browser's sign-in: the public client, the hosted login form, codes by SSO
    filler.py        growth's filler rows, written from the table metadata
    context.py       what every phase shares (the Bench) and the one way to measure a row
    phases/          one module per phase of the run
    runner.py        the run: phases in order, run metadata, clean-up
    report.py        Row, Target, Report and the ratios to ceilings
    targets.py       the targets, from the rows
    output.py        bench.md and bench.json
    cli.py           the command line of scripts/bench.py
"""

__all__: list[str] = []
