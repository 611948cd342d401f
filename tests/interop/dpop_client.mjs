// DPoP (RFC 9449) with panva's oauth4webapi against a live authsvc, driven by
// tests/test_oauth4webapi_dpop.py. Usage: node dpop_client.mjs SCENARIO ISSUER ARGS_JSON
//
//   client_credentials  {client_id, client_secret, alg}
//       two client_credentials grants through one DPoP handle, each with the library's
//       documented nonce retry (isDPoPNonceError: retry once, the handle has cached the nonce)
//   code_flow           {client_id, redirect_uri, alg, signing_alg, dpop_jkt}
//       phase one writes {"authorization_url"}; the test signs in through the hosted pages
//       and writes the callback URL to stdin; phase two redeems the code with DPoP, calls
//       /users/me (protectedResourceRequest) and /userinfo (userInfoRequest) with DPoP,
//       refreshes with DPoP, calls /users/me again, then tries the refresh token with another
//       key and the access token as Bearer (both must be refused)
//   resource_server     {client_id, client_secret, alg, resource_url}
//       a DPoP-bound client_credentials token, then POST and GET at a FastAPI resource server that
//       verifies with authsvc.verifier (scripts/example_resource_server.py), and the token as Bearer
//   private_key_jwt     {client_id, jwk, kid, dpop_alg}
//       client_credentials authenticated with PrivateKeyJwt (an imported private JWK), with a
//       DPoP proof when dpop_alg is given
//
// Writes one JSON line: the outcome ({"ok": true, ...} or {"ok": false, "failed": step, ...}).
import { createInterface } from 'node:readline'
import * as oauth from 'oauth4webapi'

const [scenario, issuer, argsJson] = process.argv.slice(2)
const args = JSON.parse(argsJson ?? '{}')
// Loopback http: the library refuses http unless told.
const insecure = { [oauth.allowInsecureRequests]: true }

function describe(error) {
  return {
    name: error?.name,
    code: error?.code,
    error: error?.error,
    status: error?.status ?? error?.response?.status,
    challenges: error?.cause instanceof Array ? error.cause : undefined,
    message: error?.message,
  }
}

async function discover() {
  const url = new URL(issuer)
  const response = await oauth.discoveryRequest(url, { algorithm: 'oauth2', ...insecure })
  return oauth.processDiscoveryResponse(url, response)
}

// oauth4webapi's nonce pattern: on a use_dpop_nonce error the DPoP handle has already cached the
// server's DPoP-Nonce; the request is made once more.
async function withNonceRetry(label, retries, attempt) {
  try {
    return await attempt()
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error
    retries.push(label)
    return await attempt()
  }
}

let step = 'start'
async function run(label, fn) {
  step = label
  return fn()
}

async function clientCredentials() {
  const as = await discover()
  const client = { client_id: args.client_id }
  const auth = oauth.ClientSecretBasic(args.client_secret)
  const keyPair = await oauth.generateKeyPair(args.alg, { extractable: true })
  const DPoP = oauth.DPoP(client, keyPair)
  const retries = []
  const tokens = []
  for (const label of ['first', 'second']) {
    tokens.push(
      await run(label, () =>
        withNonceRetry(label, retries, async () => {
          const response = await oauth.clientCredentialsGrantRequest(as, client, auth, {}, {
            DPoP,
            ...insecure,
          })
          return oauth.processClientCredentialsResponse(as, client, response)
        }),
      ),
    )
  }
  return {
    ok: true,
    retries,
    jkt: await DPoP.calculateThumbprint(),
    token_types: tokens.map((t) => t.token_type),
    access_tokens: tokens.map((t) => t.access_token),
  }
}

async function resourceServer() {
  const as = await discover()
  const client = { client_id: args.client_id }
  const auth = oauth.ClientSecretBasic(args.client_secret)
  const DPoP = oauth.DPoP(client, await oauth.generateKeyPair(args.alg, { extractable: true }))
  const retries = []
  const tokens = await run('client_credentials', () =>
    withNonceRetry('client_credentials', retries, async () => {
      const response = await oauth.clientCredentialsGrantRequest(as, client, auth, {}, { DPoP, ...insecure })
      return oauth.processClientCredentialsResponse(as, client, response)
    }),
  )
  const call = (label, method, options) =>
    run(label, async () => {
      const response = await oauth.protectedResourceRequest(
        tokens.access_token,
        method,
        new URL(args.resource_url),
        new Headers({ 'content-type': 'application/json' }),
        method === 'POST' ? '{}' : undefined,
        { ...options, ...insecure },
      )
      return { status: response.status, body: await response.json() }
    })
  const placed = await call('post_with_dpop', 'POST', { DPoP })
  const listed = await call('get_with_dpop', 'GET', { DPoP })
  let as_bearer
  try {
    as_bearer = await call('post_as_bearer', 'POST', {})
  } catch (error) {
    as_bearer = describe(error)
  }
  return { ok: true, token_type: tokens.token_type, placed, listed, as_bearer }
}

async function readLine() {
  const lines = createInterface({ input: process.stdin })
  for await (const line of lines) {
    lines.close()
    return line.trim()
  }
  throw new Error('no callback URL on stdin')
}

async function codeFlow() {
  const as = await discover()
  const client = { client_id: args.client_id, id_token_signed_response_alg: args.signing_alg }
  const auth = oauth.None()
  const keyPair = await oauth.generateKeyPair(args.alg, { extractable: true })
  const DPoP = oauth.DPoP(client, keyPair)
  const verifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  const url = new URL(as.authorization_endpoint)
  url.searchParams.set('response_type', 'code')
  url.searchParams.set('client_id', client.client_id)
  url.searchParams.set('redirect_uri', args.redirect_uri)
  url.searchParams.set('scope', 'openid profile email')
  url.searchParams.set('state', state)
  url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier))
  url.searchParams.set('code_challenge_method', 'S256')
  const jkt = await DPoP.calculateThumbprint()
  if (args.dpop_jkt) url.searchParams.set('dpop_jkt', jkt)
  process.stdout.write(JSON.stringify({ authorization_url: url.href, jkt }) + '\n')

  const callback = new URL(await readLine())
  const retries = []
  const params = await run('validateAuthResponse', () => oauth.validateAuthResponse(as, client, callback, state))
  const tokens = await run('authorization_code', () =>
    withNonceRetry('authorization_code', retries, async () => {
      const response = await oauth.authorizationCodeGrantRequest(as, client, auth, params, args.redirect_uri, verifier, {
        DPoP,
        ...insecure,
      })
      return oauth.processAuthorizationCodeResponse(as, client, response)
    }),
  )
  const me = (label, accessToken) =>
    run(label, () =>
      withNonceRetry(label, retries, async () => {
        const response = await oauth.protectedResourceRequest(
          accessToken,
          'GET',
          new URL(issuer + '/users/me'),
          undefined,
          undefined,
          { DPoP, ...insecure },
        )
        return { status: response.status, body: await response.json() }
      }),
    )
  const users_me = await me('users_me', tokens.access_token)
  const userinfo = await run('userinfo', () =>
    withNonceRetry('userinfo', retries, async () => {
      const response = await oauth.userInfoRequest(as, client, tokens.access_token, { DPoP, ...insecure })
      return oauth.processUserInfoResponse(as, client, oauth.skipSubjectCheck, response)
    }),
  )
  const refreshed = await run('refresh', () =>
    withNonceRetry('refresh', retries, async () => {
      const response = await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token, {
        DPoP,
        ...insecure,
      })
      return oauth.processRefreshTokenResponse(as, client, response)
    }),
  )
  const users_me_after_refresh = await me('users_me_after_refresh', refreshed.access_token)

  // The refresh token is the key's only: another key's proof is refused (invalid_grant).
  const thief = oauth.DPoP(client, await oauth.generateKeyPair(args.alg, { extractable: true }))
  let stolen_refresh
  try {
    await withNonceRetry('stolen_refresh', retries, async () => {
      const response = await oauth.refreshTokenGrantRequest(as, client, auth, refreshed.refresh_token, {
        DPoP: thief,
        ...insecure,
      })
      return oauth.processRefreshTokenResponse(as, client, response)
    })
    stolen_refresh = { accepted: true }
  } catch (error) {
    stolen_refresh = describe(error)
  }
  // The access token is the key's only: sent as a Bearer token it is refused.
  let as_bearer
  try {
    const response = await oauth.protectedResourceRequest(
      refreshed.access_token,
      'GET',
      new URL(issuer + '/users/me'),
      undefined,
      undefined,
      insecure,
    )
    as_bearer = { accepted: true, status: response.status }
  } catch (error) {
    as_bearer = describe(error)
  }
  return {
    ok: true,
    jkt,
    retries,
    token_type: tokens.token_type,
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token,
    users_me,
    userinfo,
    refreshed_token_type: refreshed.token_type,
    refreshed_access_token: refreshed.access_token,
    refreshed_refresh_token: refreshed.refresh_token,
    users_me_after_refresh,
    stolen_refresh,
    as_bearer,
  }
}

async function privateKeyJwt() {
  const as = await discover()
  const client = { client_id: args.client_id }
  const key = await crypto.subtle.importKey('jwk', args.jwk, { name: 'Ed25519' }, false, ['sign'])
  const assertion = {}
  const auth = oauth.PrivateKeyJwt(
    { key, kid: args.kid },
    {
      [oauth.modifyAssertion]: (header) => {
        assertion.alg = header.alg
      },
    },
  )
  const options = { ...insecure }
  const retries = []
  if (args.dpop_alg) {
    options.DPoP = oauth.DPoP(client, await oauth.generateKeyPair(args.dpop_alg, { extractable: true }))
  }
  try {
    const tokens = await run('client_credentials', () =>
      withNonceRetry('client_credentials', retries, async () => {
        const response = await oauth.clientCredentialsGrantRequest(as, client, auth, {}, options)
        return oauth.processClientCredentialsResponse(as, client, response)
      }),
    )
    return {
      ok: true,
      assertion_alg: assertion.alg,
      retries,
      token_type: tokens.token_type,
      access_token: tokens.access_token,
      jkt: options.DPoP ? await options.DPoP.calculateThumbprint() : null,
    }
  } catch (error) {
    return { ok: false, failed: step, assertion_alg: assertion.alg, ...describe(error) }
  }
}

const scenarios = {
  client_credentials: clientCredentials,
  code_flow: codeFlow,
  private_key_jwt: privateKeyJwt,
  resource_server: resourceServer,
}
try {
  const outcome = await scenarios[scenario]()
  process.stdout.write(JSON.stringify(outcome) + '\n')
} catch (error) {
  process.stdout.write(JSON.stringify({ ok: false, failed: step, ...describe(error) }) + '\n')
}
