// A relying party built on panva's oauth4webapi in its OpenID Connect profile, with jose for
// the ID token's signature. Driven by tests/test_oauth4webapi_oidc.py in two phases:
//
//   node oidc_client.mjs ISSUER CLIENT_ID REDIRECT_URI [CLIENT_SECRET]
//
// 1. discovery (algorithm 'oidc'), PKCE S256, state and nonce; writes one JSON line
//    {"authorization_url": ...}. The browser part (the hosted pages) is done by the test.
// 2. reads the callback URL (one line on stdin), then validateAuthResponse (iss, state),
//    the code grant (ID token claims and nonce checked by the library, its signature by
//    jose against the JWKS), userinfo, and a refresh; writes one JSON line with the
//    results, or {"failed": step, "code": ..., "error": ...} at the first refusal.
// Loopback http issuer: allowInsecureRequests is set; nothing else is relaxed.
import { createInterface } from 'node:readline'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import * as oauth from 'oauth4webapi'

const [issuerArg, clientId, redirectUri, clientSecret] = process.argv.slice(2)
const issuer = new URL(issuerArg)
const insecure = { [oauth.allowInsecureRequests]: true }
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()

function emit(value) {
  process.stdout.write(JSON.stringify(value) + '\n')
}

let step = 'start'
function describe(error) {
  const cause = error?.cause
  let detail
  if (cause instanceof URLSearchParams) detail = Object.fromEntries(cause)
  else if (cause && typeof cause === 'object') detail = cause.error ?? cause.body ?? undefined
  return {
    failed: step,
    code: error?.code ?? error?.name ?? 'Error',
    error: error?.error ?? (cause instanceof URLSearchParams ? cause.get('error') : undefined),
    message: String(error?.message ?? error),
    detail,
  }
}

async function main() {
  step = 'discovery'
  const discovered = await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...insecure })
  const as = await oauth.processDiscoveryResponse(issuer, discovered)
  const client = { client_id: clientId }
  const clientAuth = clientSecret ? oauth.ClientSecretBasic(clientSecret) : oauth.None()

  step = 'authorization_url'
  const codeVerifier = oauth.generateRandomCodeVerifier()
  const codeChallenge = await oauth.calculatePKCECodeChallenge(codeVerifier)
  const state = oauth.generateRandomState()
  const nonce = oauth.generateRandomNonce()
  const url = new URL(as.authorization_endpoint)
  url.search = new URLSearchParams({
    client_id: clientId,
    redirect_uri: redirectUri,
    response_type: 'code',
    scope: 'openid profile email offline_access',
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  }).toString()
  emit({ authorization_url: url.href, state, nonce })

  step = 'callback'
  const { value: callback, done } = await lines.next()
  if (done) throw new Error('no callback URL on stdin')

  step = 'validateAuthResponse'
  const params = oauth.validateAuthResponse(as, client, new URL(callback.trim()), state)

  step = 'authorization_code_grant'
  const tokenResponse = await oauth.authorizationCodeGrantRequest(
    as, client, clientAuth, params, redirectUri, codeVerifier, insecure,
  )
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, tokenResponse, {
    expectedNonce: nonce,
    requireIdToken: true,
  })
  const claims = oauth.getValidatedIdTokenClaims(tokens)

  step = 'id_token_signature'
  const jwks = createRemoteJWKSet(new URL(as.jwks_uri))
  const verified = await jwtVerify(tokens.id_token, jwks, {
    issuer: as.issuer,
    audience: clientId,
    algorithms: as.id_token_signing_alg_values_supported,
    typ: 'JWT',
  })

  step = 'userinfo'
  const userinfoResponse = await oauth.userInfoRequest(as, client, tokens.access_token, insecure)
  const userinfoCacheControl = userinfoResponse.headers.get('cache-control')
  const userinfo = await oauth.processUserInfoResponse(as, client, claims.sub, userinfoResponse)

  step = 'refresh'
  const refreshResponse = await oauth.refreshTokenGrantRequest(
    as, client, clientAuth, tokens.refresh_token, insecure,
  )
  const refreshed = await oauth.processRefreshTokenResponse(as, client, refreshResponse)

  step = 'userinfo_after_refresh'
  const again = await oauth.processUserInfoResponse(
    as, client, claims.sub,
    await oauth.userInfoRequest(as, client, refreshed.access_token, insecure),
  )

  emit({
    ok: true,
    issuer: as.issuer,
    callback_params: Object.fromEntries(params),
    id_token: tokens.id_token,
    access_token: tokens.access_token,
    id_token_claims: claims,
    id_token_header: verified.protectedHeader,
    scope: tokens.scope,
    userinfo,
    userinfo_cache_control: userinfoCacheControl,
    refreshed: {
      access_token: refreshed.access_token,
      rotated: refreshed.refresh_token !== undefined && refreshed.refresh_token !== tokens.refresh_token,
      id_token_claims: refreshed.id_token ? oauth.getValidatedIdTokenClaims(refreshed) : null,
    },
    userinfo_after_refresh: again,
  })
}

try {
  await main()
} catch (error) {
  emit(describe(error))
}
process.exit(0)
