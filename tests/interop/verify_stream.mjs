// Verify access tokens with panva's jose and oauth4webapi at their default cache
// settings, as a resource server would: one JWKS cache per library for the life of
// this process. Usage: node verify_stream.mjs ISSUER AUDIENCE
// Reads one access token per line on stdin; writes one JSON line per token:
// {"jose": "ok" | error code, "oauth4webapi": "ok" | error code}.
import { createInterface } from 'node:readline'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import * as oauth from 'oauth4webapi'

const [issuer, audience] = process.argv.slice(2)
const jwksUri = `${issuer}/.well-known/jwks.json`
const joseKeys = createRemoteJWKSet(new URL(jwksUri)) // defaults: 30 s cooldown, 10 min max age
const as = { issuer, jwks_uri: jwksUri }
// Loopback http: the library refuses http unless told; no cache option is changed.
const oauthOptions = { [oauth.allowInsecureRequests]: true }

function outcome(error) {
  return error?.code ?? error?.name ?? String(error)
}

async function verify(token) {
  const result = {}
  try {
    await jwtVerify(token, joseKeys, { issuer, audience, typ: 'at+jwt' })
    result.jose = 'ok'
  } catch (error) {
    result.jose = outcome(error)
  }
  try {
    const request = new Request(`${issuer}/resource`, { headers: { authorization: `Bearer ${token}` } })
    await oauth.validateJwtAccessToken(as, request, audience, oauthOptions)
    result.oauth4webapi = 'ok'
  } catch (error) {
    result.oauth4webapi = outcome(error)
  }
  return result
}

const lines = createInterface({ input: process.stdin })
for await (const line of lines) {
  if (!line.trim()) continue
  process.stdout.write(JSON.stringify(await verify(line.trim())) + '\n')
}
