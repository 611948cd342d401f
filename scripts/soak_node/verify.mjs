// panva jose as a long-lived resource server for scripts/soak.py.
// Usage: node verify.mjs ISSUER AUDIENCE LEEWAY_SECONDS MAX_AGE_SECONDS
// Reads one JSON line per token on stdin ({"id", "token"}), writes one JSON line per
// answer ({"id", "ok", "code"}) in the same order.
//
// createRemoteJWKSet keeps its own cache (cacheMaxAge) and re-fetches an unknown kid at
// most once per cooldown (30 s default). It does not read Cache-Control itself, so the
// fetch is wrapped: the JWKS answer's max-age minus Age sets when the cache is reloaded,
// and cacheMaxAge is AUTHSVC_JWKS_MAX_AGE, the most the server ever sends.
import { createInterface } from 'node:readline'
import { createRemoteJWKSet, customFetch, jwtVerify } from 'jose'

const [issuer, audience, leeway, maxAge] = process.argv.slice(2)
let staleAt = 0 // ms since the epoch at which the cached JWKS is stale by its headers
let fetches = 0

async function fetchHonouringCacheControl(url, options) {
  const response = await fetch(url, options)
  fetches += 1
  const cacheControl = response.headers.get('cache-control') ?? ''
  const match = /max-age=(\d+)/.exec(cacheControl)
  const age = Number(response.headers.get('age') ?? 0)
  const seconds = match ? Math.max(1, Number(match[1]) - age) : 300
  staleAt = Date.now() + seconds * 1000
  return response
}

const keys = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`), {
  cacheMaxAge: Number(maxAge) * 1000,
  [customFetch]: fetchHonouringCacheControl,
})

async function verify(token) {
  if (staleAt && Date.now() >= staleAt && !keys.reloading) {
    try {
      await keys.reload()
    } catch {
      // a failed re-fetch keeps the cached keys (what a resource server should do)
    }
  }
  try {
    await jwtVerify(token, keys, { issuer, audience, typ: 'at+jwt', clockTolerance: Number(leeway) })
    return { ok: true, code: 'ok' }
  } catch (error) {
    return { ok: false, code: error?.code ?? `${error?.name}: ${error?.message}` }
  }
}

const lines = createInterface({ input: process.stdin })
for await (const line of lines) {
  if (!line.trim()) continue
  const { id, token } = JSON.parse(line)
  const result = await verify(token)
  process.stdout.write(JSON.stringify({ id, fetches, ...result }) + '\n')
}
