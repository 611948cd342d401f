// node-oidc-provider as the benchmark peer of authsvc (driven by scripts/bench.py).
//
//   cd scripts/bench_peer && npm install
//   BENCH_PORT=8100 BENCH_ALG=EdDSA BENCH_CLIENT_SECRET=... BENCH_POOL=64 \
//     BENCH_TOKENS_OUT=/tmp/peer-tokens.txt BENCH_CONTROL_PORT=8101 node server.js
//
// The in-memory adapter or a Redis one (see below), JWT access tokens through a resource indicator,
// client_credentials and refresh_token grants, one confidential client per
// refresh mode (client_secret_basic):
//   bench           refresh tokens are NOT rotated (the ANCHORS.md figure)
//   bench-rot       every refresh rotates the refresh token (like authsvc)
//   bench-rot-dpop  the same as bench-rot, its own families for the DPoP refresh row
// BENCH_POOL refresh tokens per client are minted at start (programmatically: a
// Grant plus a RefreshToken, as an authorization_code exchange would leave them)
// and written to BENCH_TOKENS_OUT as "<client_id> <token>" lines, then
// "ready <issuer>" is printed.
//
// Browser sign-in (authorization_code + PKCE): a public client `bench-spa`
// (token_endpoint_auth_method none, authorization_code and refresh_token). Its
// codes are minted in this process, through the provider's own models, by a
// peer-only listener on BENCH_CONTROL_PORT (never on the measured port):
//   POST /bench/codes?count=N  ->  N lines "<code> <code_verifier>"
// Each code is what an interactive sign-in would leave: its own saved Grant
// (openid offline_access, read write on the resource), an S256 challenge of a
// fresh verifier, a nonce and a sid, bound to http://127.0.0.1/cb. Its
// redemption issues a JWT access token, a refresh token and an id_token.
//
// The default in-memory adapter keeps at most ~1,000-2,000 entries (an LRU of
// 1,000 per provider): codes minted ahead of a load run would be evicted before
// they are redeemed. The provider gets the same adapter class over the same LRU
// class with room for BENCH_STORE_SIZE entries instead (its `adapter` option, as
// a factory): the adapter's code is the default one, only its capacity differs.
//
// Storage (BENCH_ADAPTER):
//   memory (default)  the in-memory adapter described above;
//   redis             redis_adapter.js, node-oidc-provider's documented adapter interface over ioredis
//                     (the shape of the example adapter in its repository: a production setup), on
//                     BENCH_REDIS_URL (default redis://127.0.0.1:6379/13), every key under
//                     BENCH_REDIS_PREFIX (default "authsvc-bench-peer:"). The keys under that prefix,
//                     and only those (SCAN + DEL), are deleted before the first token is minted and
//                     again on SIGTERM/SIGINT, once the requests still in flight are answered (5 s at
//                     most). Everything else (clients, rotation, JWT access tokens) is the same.
//
// DPoP (RFC 9449, `features.dPoP`, on by default in v9, enabled here explicitly; no nonces): proofs
// signed with ES256, EdDSA/Ed25519 (its defaults) or RS256 (added to
// `enabledJWA.dPoPSigningAlgValues`: the bench signs a row's proofs with the row's alg). Its proofs'
// jti are remembered by its ReplayDetection model, in the same adapter. It has no
// /users/me: the bench's protected-resource row is its userinfo endpoint (/me), with an opaque
// access token (userinfo refuses a token with an audience) minted in this process by the control
// listener, bound to a DPoP key or not:
//   POST /bench/access-token[?jkt=<RFC 7638 thumbprint>]  ->  the token (scope openid, client bench)
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';
import MemoryAdapter from 'oidc-provider/lib/adapters/memory_adapter.js';
import LRU from 'oidc-provider/lib/helpers/lru.js';

import { clearPrefix, connect, makeRedisAdapter } from './redis_adapter.js';

const port = Number(process.env.BENCH_PORT || 8100);
const alg = process.env.BENCH_ALG || 'RS256';
const secret = process.env.BENCH_CLIENT_SECRET;
const pool = Number(process.env.BENCH_POOL || 64);
const tokensOut = process.env.BENCH_TOKENS_OUT;
const controlPort = Number(process.env.BENCH_CONTROL_PORT || 0);
const storeSize = Number(process.env.BENCH_STORE_SIZE || 1_000_000);
const adapterKind = process.env.BENCH_ADAPTER || 'memory';
const redisUrl = process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379/13';
const redisPrefix = process.env.BENCH_REDIS_PREFIX || 'authsvc-bench-peer:';
if (!secret || secret.length < 32) {
  throw new Error('BENCH_CLIENT_SECRET (>= 32 characters) is required');
}
if (!['RS256', 'EdDSA'].includes(alg)) {
  throw new Error(`BENCH_ALG must be RS256 or EdDSA, not ${alg}`);
}
if (!['memory', 'redis'].includes(adapterKind)) {
  throw new Error(`BENCH_ADAPTER must be memory or redis, not ${adapterKind}`);
}
if (adapterKind === 'redis' && !redisPrefix) {
  throw new Error('BENCH_REDIS_PREFIX must not be empty: the peer deletes every key under it');
}

const issuer = `http://127.0.0.1:${port}`;
const RESOURCE = 'urn:authsvc-bench:api';
const ACCOUNT = 'bench-user';
const SPA = 'bench-spa';
const REDIRECT_URI = 'http://127.0.0.1/cb';
const CODE_SCOPE = 'openid offline_access read write';

// Requests the provider is still answering: the load generator stops with requests in flight, whose
// tokens are written after it has gone; the Redis peer's exit waits for them before it clears its keys.
let inFlight = 0;
let listener;
let adapter;
let redis;
if (adapterKind === 'redis') {
  redis = await connect(redisUrl);
  const removed = await clearPrefix(redis, redisPrefix);
  console.log(`redis ${redisUrl}: ${removed} keys under ${redisPrefix} deleted`);
  adapter = makeRedisAdapter(redis, redisPrefix);
  const shutdown = async () => {
    try {
      listener?.close();
      const deadline = Date.now() + 5000;
      while (inFlight > 0 && Date.now() < deadline) {
        // eslint-disable-next-line no-await-in-loop
        await new Promise((resolve) => { setTimeout(resolve, 20); });
      }
      await clearPrefix(redis, redisPrefix);
    } finally {
      process.exit(0);
    }
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
} else {
  const store = new LRU({ maxSize: storeSize });
  // 15: the default clockTolerance, which the default adapter is made with (initialize_adapter.js).
  adapter = (model) => new MemoryAdapter(model, store, 15);
}

const { privateKey } = alg === 'RS256'
  ? generateKeyPairSync('rsa', { modulusLength: 2048 })
  : generateKeyPairSync('ed25519');
const jwk = { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig' };

const client = (clientId) => ({
  client_id: clientId,
  client_secret: secret,
  grant_types: ['client_credentials', 'refresh_token', 'authorization_code'],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/cb'],
  token_endpoint_auth_method: 'client_secret_basic',
  id_token_signed_response_alg: alg,
  scope: 'read write',
});

const spa = {
  client_id: SPA,
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: [REDIRECT_URI],
  token_endpoint_auth_method: 'none',
  id_token_signed_response_alg: alg,
  scope: CODE_SCOPE,
};

const provider = new Provider(issuer, {
  clients: [client('bench'), client('bench-rot'), client('bench-rot-dpop'), spa],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'offline_access', 'read', 'write'],
  adapter,
  findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  rotateRefreshToken: (ctx) => ctx.oidc.client.clientId.startsWith('bench-rot'),
  ttl: {
    AccessToken: 900,
    ClientCredentials: 900,
    RefreshToken: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
  },
  enabledJWA: { dPoPSigningAlgValues: ['ES256', 'EdDSA', 'Ed25519', 'RS256'] },
  features: {
    devInteractions: { enabled: false },
    dPoP: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'read write',
        audience: RESOURCE,
        accessTokenTTL: 900,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg } },
      }),
    },
  },
});

async function mint(clientId, count) {
  const found = await provider.Client.find(clientId);
  const tokens = [];
  for (let i = 0; i < count; i += 1) {
    const grant = new provider.Grant({ accountId: ACCOUNT, clientId });
    grant.addOIDCScope('openid offline_access');
    grant.addResourceScope(RESOURCE, 'read write');
    const grantId = await grant.save();
    const refresh = new provider.RefreshToken({
      accountId: ACCOUNT,
      client: found,
      grantId,
      gty: 'authorization_code',
      scope: 'read write',
      resource: RESOURCE,
      expiresWithSession: false,
      iiat: Math.floor(Date.now() / 1000),
    });
    tokens.push(`${clientId} ${await refresh.save()}`);
  }
  return tokens;
}

// One authorization code as an interactive sign-in leaves it (helpers/process_response_types.js,
// codeHandler): its grant, the PKCE challenge, nonce, sid, resource; not bound to a session
// (offline_access). Returns "<code> <code_verifier>".
async function mintCode(spaClient) {
  const grant = new provider.Grant({ accountId: ACCOUNT, clientId: SPA });
  grant.addOIDCScope('openid offline_access');
  grant.addResourceScope(RESOURCE, 'read write');
  const grantId = await grant.save();
  const verifier = randomBytes(32).toString('base64url');
  const code = new provider.AuthorizationCode({
    accountId: ACCOUNT,
    authTime: Math.floor(Date.now() / 1000),
    client: spaClient,
    codeChallenge: createHash('sha256').update(verifier).digest('base64url'),
    codeChallengeMethod: 'S256',
    expiresWithSession: false,
    grantId,
    nonce: randomBytes(16).toString('base64url'),
    redirectUri: REDIRECT_URI,
    resource: RESOURCE,
    scope: CODE_SCOPE,
    sid: randomBytes(16).toString('base64url'),
  });
  return `${await code.save()} ${verifier}`;
}

// An opaque access token for userinfo (no audience), bound to the DPoP key `jkt` when given.
async function mintAccessToken(jkt) {
  const found = await provider.Client.find('bench');
  const grant = new provider.Grant({ accountId: ACCOUNT, clientId: 'bench' });
  grant.addOIDCScope('openid');
  const grantId = await grant.save();
  const token = new provider.AccessToken({
    accountId: ACCOUNT,
    client: found,
    grantId,
    gty: 'authorization_code',
    scope: 'openid',
    ...(jkt ? { jkt } : {}),
  });
  return token.save();
}

function serveControl() {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (req.method === 'POST' && url.pathname === '/bench/access-token') {
      try {
        const token = await mintAccessToken(url.searchParams.get('jkt'));
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`${token}\n`);
      } catch (err) {
        res.writeHead(500).end(`${err.stack || err}\n`);
      }
      return;
    }
    if (req.method !== 'POST' || url.pathname !== '/bench/codes') {
      res.writeHead(404).end();
      return;
    }
    const count = Number(url.searchParams.get('count'));
    if (!Number.isInteger(count) || count < 1 || count > 200_000) {
      res.writeHead(400).end('count: an integer 1..200000\n');
      return;
    }
    try {
      const spaClient = await provider.Client.find(SPA);
      const lines = [];
      for (let i = 0; i < count; i += 1) {
        lines.push(await mintCode(spaClient));
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`${lines.join('\n')}\n`);
    } catch (err) {
      res.writeHead(500).end(`${err.stack || err}\n`);
    }
  });
  server.listen(controlPort, '127.0.0.1');
}

const lines = [
  ...await mint('bench', Math.min(pool, 8)),
  ...await mint('bench-rot', pool),
  ...await mint('bench-rot-dpop', pool),
];
if (tokensOut) {
  writeFileSync(tokensOut, `${lines.join('\n')}\n`);
}
if (controlPort) {
  serveControl();
}
if (adapterKind === 'redis') {
  provider.use(async (_ctx, next) => {
    inFlight += 1;
    try {
      await next();
    } finally {
      inFlight -= 1;
    }
  });
}
listener = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
