// A Redis adapter for node-oidc-provider (the bench peer's BENCH_ADAPTER=redis), written from its
// documented adapter interface (upsert, find, findByUid, findByUserCode, consume, destroy,
// revokeByGrantId) in the shape of the example Redis adapter of its repository, over ioredis:
//   * a model that can be consumed (codes, refresh tokens, ...) is a hash {payload, consumed}; any
//     other model a JSON string; each key expires with its expiresIn;
//   * a token with a grantId is also pushed on that grant's list (grant:<id>), which
//     revokeByGrantId deletes with every key on it; the list lives as long as its longest member;
//   * uid and userCode are secondary keys holding the id.
// Every key is under `prefix` (ioredis keyPrefix); clearPrefix deletes those keys and no others.
import Redis from 'ioredis';

const grantable = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

const consumable = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
  'PushedAuthorizationRequest',
]);

const grantKeyFor = (id) => `grant:${id}`;
const userCodeKeyFor = (userCode) => `userCode:${userCode}`;
const uidKeyFor = (uid) => `uid:${uid}`;

// A connection that fails at once when Redis is not there (the bench checks first; this says why).
export async function connect(url) {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: true });
  await client.connect();
  await client.ping();
  return client;
}

// Deletes every key under `prefix` (SCAN MATCH prefix*, then DEL), nothing else; returns the count.
export async function clearPrefix(client, prefix) {
  const pattern = `${prefix.replace(/[\\*?[\]]/g, '\\$&')}*`;
  let cursor = '0';
  let removed = 0;
  do {
    // eslint-disable-next-line no-await-in-loop
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length) {
      // eslint-disable-next-line no-await-in-loop
      removed += await client.del(...keys);
    }
  } while (cursor !== '0');
  return removed;
}

// The provider's `adapter` option: a factory of one adapter per model name, all on `base`'s server
// and database, every key under `prefix`.
export function makeRedisAdapter(base, prefix) {
  const client = base.duplicate({ keyPrefix: prefix });

  class RedisAdapter {
    constructor(name) {
      this.name = name;
    }

    key(id) {
      return `${this.name}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      const key = this.key(id);
      const multi = client.multi();
      if (consumable.has(this.name)) {
        multi.hset(key, { payload: JSON.stringify(payload) });
      } else {
        multi.set(key, JSON.stringify(payload));
      }
      if (expiresIn) {
        multi.expire(key, expiresIn);
      }
      if (grantable.has(this.name) && payload.grantId) {
        const grantKey = grantKeyFor(payload.grantId);
        multi.rpush(grantKey, key);
        const ttl = await client.ttl(grantKey);
        if (expiresIn > ttl) {
          multi.expire(grantKey, expiresIn);
        }
      }
      if (payload.userCode) {
        const userCodeKey = userCodeKeyFor(payload.userCode);
        multi.set(userCodeKey, id);
        multi.expire(userCodeKey, expiresIn);
      }
      if (payload.uid) {
        const uidKey = uidKeyFor(payload.uid);
        multi.set(uidKey, id);
        multi.expire(uidKey, expiresIn);
      }
      await multi.exec();
    }

    async find(id) {
      if (consumable.has(this.name)) {
        const data = await client.hgetall(this.key(id));
        if (!data || !data.payload) {
          return undefined;
        }
        const { payload, ...rest } = data;
        return { ...rest, ...JSON.parse(payload) };
      }
      const data = await client.get(this.key(id));
      return data ? JSON.parse(data) : undefined;
    }

    async findByUid(uid) {
      const id = await client.get(uidKeyFor(uid));
      return id ? this.find(id) : undefined;
    }

    async findByUserCode(userCode) {
      const id = await client.get(userCodeKeyFor(userCode));
      return id ? this.find(id) : undefined;
    }

    async destroy(id) {
      await client.del(this.key(id));
    }

    // eslint-disable-next-line class-methods-use-this
    async revokeByGrantId(grantId) {
      const grantKey = grantKeyFor(grantId);
      const keys = await client.lrange(grantKey, 0, -1);
      const multi = client.multi();
      keys.forEach((key) => multi.del(key));
      multi.del(grantKey);
      await multi.exec();
    }

    async consume(id) {
      await client.hset(this.key(id), 'consumed', Math.floor(Date.now() / 1000));
    }
  }

  return RedisAdapter;
}
