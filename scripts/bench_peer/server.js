// node-oidc-provider as the benchmark peer of authsvc (driven by scripts/bench.py).
//
//   cd scripts/bench_peer && npm install
//   BENCH_PORT=8100 BENCH_ALG=EdDSA BENCH_CLIENT_SECRET=... BENCH_POOL=64 \
//     BENCH_TOKENS_OUT=/tmp/peer-tokens.txt node server.js
//
// The default in-memory adapter, JWT access tokens through a resource indicator,
// client_credentials and refresh_token grants, one confidential client per
// refresh mode (client_secret_basic):
//   bench      refresh tokens are NOT rotated (the ANCHORS.md figure)
//   bench-rot  every refresh rotates the refresh token (like authsvc)
// BENCH_POOL refresh tokens per client are minted at start (programmatically: a
// Grant plus a RefreshToken, as an authorization_code exchange would leave them)
// and written to BENCH_TOKENS_OUT as "<client_id> <token>" lines, then
// "ready <issuer>" is printed.
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const port = Number(process.env.BENCH_PORT || 8100);
const alg = process.env.BENCH_ALG || 'RS256';
const secret = process.env.BENCH_CLIENT_SECRET;
const pool = Number(process.env.BENCH_POOL || 64);
const tokensOut = process.env.BENCH_TOKENS_OUT;
if (!secret || secret.length < 32) {
  throw new Error('BENCH_CLIENT_SECRET (>= 32 characters) is required');
}
if (!['RS256', 'EdDSA'].includes(alg)) {
  throw new Error(`BENCH_ALG must be RS256 or EdDSA, not ${alg}`);
}

const issuer = `http://127.0.0.1:${port}`;
const RESOURCE = 'urn:authsvc-bench:api';
const ACCOUNT = 'bench-user';

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

const provider = new Provider(issuer, {
  clients: [client('bench'), client('bench-rot')],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'offline_access', 'read', 'write'],
  findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  rotateRefreshToken: (ctx) => ctx.oidc.client.clientId === 'bench-rot',
  ttl: {
    AccessToken: 900,
    ClientCredentials: 900,
    RefreshToken: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
  },
  features: {
    devInteractions: { enabled: false },
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

const lines = [...await mint('bench', Math.min(pool, 8)), ...await mint('bench-rot', pool)];
if (tokensOut) {
  writeFileSync(tokensOut, `${lines.join('\n')}\n`);
}
provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
