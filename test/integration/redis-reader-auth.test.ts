/**
 * The lean lookup client against a Redis of the test's own that requires a
 * password and has an ACL user: it must authenticate (password alone, and
 * user + password), select the URL's database, and refuse to serve when
 * the credentials are wrong. Needs redis-server (required when CI=true).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { RedisLookupReader } from '../../src/online/redis-reader.js';
import { silentLogger } from '../../src/logger.js';
import { freePort, redisServerInstalled } from '../redis-helpers.js';

const available = redisServerInstalled();
if (!available && process.env.CI === 'true') throw new Error('redis-server is not installed, and CI=true requires these tests');

test('the lean lookup client authenticates, selects the database and refuses wrong credentials', { skip: available ? false : 'redis-server is not installed' }, async () => {
  const port = await freePort();
  const started = spawnSync('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes', '--loglevel', 'warning', '--requirepass', 's3cret', '--user', 'alice', 'on', '>pa:ss', '~*', '&*', '+@all']);
  assert.equal(started.status, 0, started.stderr.toString());
  const base = `127.0.0.1:${port}`;
  const writer = new Redis(`redis://:s3cret@${base}/2`, { maxRetriesPerRequest: 1 });
  const readers: RedisLookupReader[] = [];
  const reader = (url: string): RedisLookupReader => {
    const r = new RedisLookupReader(url, 500, silentLogger);
    readers.push(r);
    return r;
  };
  try {
    for (let i = 0; i < 100 && writer.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 20));
    await writer.hset('h', 'f', 'in db 2 ✓');
    const byPassword = reader(`redis://:s3cret@${base}/2`);
    await byPassword.whenReady(2000);
    // Values come as latin1 text of their bytes.
    const inDb2 = Buffer.from('in db 2 ✓').toString('latin1');
    assert.deepEqual((await byPassword.hmget('h', ['f', 'nope'])).values, [inDb2, null]);
    // A user and a password with a character that must be percent-encoded in a URL.
    const byUser = reader(`redis://alice:${encodeURIComponent('pa:ss')}@${base}/2`);
    await byUser.whenReady(2000);
    assert.deepEqual((await byUser.hmget('h', ['f'])).values, [inDb2]);
    // No database in the URL: database 0, where the hash is not.
    const db0 = reader(`redis://:s3cret@${base}`);
    await db0.whenReady(2000);
    assert.deepEqual((await db0.hmget('h', ['f'])).values, [null]);
    // Wrong password: never ready, and lookups fail at once instead of waiting.
    const wrong = reader(`redis://:nope@${base}/2`);
    await assert.rejects(wrong.whenReady(600), /not ready/);
    const t0 = performance.now();
    await assert.rejects(wrong.hmget('h', ['f']), /not ready/);
    assert.ok(performance.now() - t0 < 100);
  } finally {
    for (const r of readers) r.close();
    writer.disconnect();
    spawnSync('redis-cli', ['-p', String(port), '-a', 's3cret', '--no-auth-warning', 'shutdown', 'nosave']);
  }
});
