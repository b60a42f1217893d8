/**
 * The data folder's exclusive lock (engine/lock.ts), with real processes: a
 * running server keeps a second server and the CLI's --data-dir commands out,
 * naming its PID; after kill -9 its stale lock is taken over without help; a
 * clean stop removes the lock. In-process: a second open of the same folder
 * is refused until the first closes; the temporary files of a crashed acquire
 * are removed, those of a live PID left alone.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Engine } from '../../src/engine/engine.js';
import { DataDirLock, DataDirLockedError, lockSteps } from '../../src/engine/lock.js';
import { silentLogger } from '../../src/logger.js';
import { tempDir } from '../helpers.js';
import { killAll, readyChild, runCli, startChild } from '../child-server.js';

const open = (dataDir: string) => Engine.open({ dataDir, logger: silentLogger });

/** A PID no process has now: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('the data-folder lock', () => {
  after(killAll);

  test('a second open in the same process is refused, naming this PID; close releases the lock', async () => {
    const dir = await tempDir();
    try {
      const first = await open(dir.path);
      const lock = JSON.parse(await readFile(join(dir.path, 'LOCK'), 'utf8'));
      assert.equal(lock.pid, process.pid);
      await assert.rejects(open(dir.path), (e: unknown) => e instanceof DataDirLockedError && e.holderPid === process.pid && e.message.includes(`PID ${process.pid}`));
      await first.close();
      assert.equal(existsSync(join(dir.path, 'LOCK')), false, 'close removes the lock file');
      const second = await open(dir.path);
      await second.close();
    } finally {
      await dir.cleanup();
    }
  });

  test('stale locks are taken over: a dead PID, an unreadable file, a live PID that started at another time (reused)', async (t) => {
    const dir = await tempDir();
    try {
      const stale: [string, string][] = [
        ['dead PID', JSON.stringify({ pid: deadPid(), since: '2026-01-01T00:00:00.000Z' })],
        ['torn write', '{"pid":12'],
      ];
      if (existsSync('/proc/self/stat')) stale.push(['reused PID', JSON.stringify({ pid: process.pid, start: '1', since: '2026-01-01T00:00:00.000Z' })]);
      else t.diagnostic('no /proc: the reused-PID case is Linux only');
      for (const [what, content] of stale) {
        await writeFile(join(dir.path, 'LOCK'), content);
        const e = await open(dir.path);
        assert.equal(JSON.parse(await readFile(join(dir.path, 'LOCK'), 'utf8')).pid, process.pid, what);
        await e.close();
      }
      // A live holder that is not stale: this process, recorded with its real start time, refuses.
      const held = await open(dir.path);
      const text = await readFile(join(dir.path, 'LOCK'), 'utf8');
      await assert.rejects(open(dir.path), DataDirLockedError);
      assert.equal(await readFile(join(dir.path, 'LOCK'), 'utf8'), text, 'a refused open leaves the holder\'s lock alone');
      await held.close();
    } finally {
      await dir.cleanup();
    }
  });

  test('a new LOCK is never seen empty: an acquire made the moment it exists is refused, and the first holder keeps it', async () => {
    const dir = await tempDir();
    let second: unknown;
    lockSteps.created = async () => {
      lockSteps.created = undefined;
      // Another acquire (another process, as far as the file is concerned) reads LOCK right after it came to be.
      second = await DataDirLock.acquire(dir.path).catch((e: unknown) => e);
    };
    try {
      const first = await DataDirLock.acquire(dir.path);
      assert.ok(second instanceof DataDirLockedError, `the second acquire must be refused, got ${second instanceof DataDirLock ? 'the lock too' : String(second)}`);
      assert.equal((second as DataDirLockedError).holderPid, process.pid);
      const text = await readFile(join(dir.path, 'LOCK'), 'utf8');
      assert.equal(JSON.parse(text).pid, process.pid);
      assert.deepEqual((await readdir(dir.path)).sort(), ['LOCK'], 'no temporary file left');
      await first.release();
      assert.equal(existsSync(join(dir.path, 'LOCK')), false);
    } finally {
      lockSteps.created = undefined;
      await dir.cleanup();
    }
  });

  test('open removes the temporary files of acquires that crashed, of dead PIDs only (a live PID may be mid-acquire)', async () => {
    const dir = await tempDir();
    try {
      const dead = deadPid();
      const deadTmp = `LOCK.${dead}-a1b2c3d4e5f6.tmp`;
      const deadAside = `LOCK.stale-${dead}`;
      const liveTmp = `LOCK.${process.pid}-0123456789ab.tmp`;
      for (const name of [deadTmp, deadAside, liveTmp]) await writeFile(join(dir.path, name), '{"pid":1}\n');
      const e = await open(dir.path);
      const names = await readdir(dir.path);
      assert.ok(!names.includes(deadTmp), `a dead PID's temp file is removed: ${names.join(', ')}`);
      assert.ok(!names.includes(deadAside), `a dead PID's moved-aside lock is removed: ${names.join(', ')}`);
      assert.ok(names.includes(liveTmp), 'a live PID\'s temp file is left alone');
      await e.close();
    } finally {
      await dir.cleanup();
    }
  });

  test('real processes: a server holds its folder against a second server and the CLI; after kill -9 the CLI takes over', async () => {
    const dir = await tempDir();
    try {
      const csv = join(dir.path, 'rows.csv');
      await writeFile(csv, 'id,x\n1,10\n2,20\n');
      const server = await readyChild(dir.path);
      const pid = server.proc.pid!;

      const second = await startChild(dir.path);
      await assert.rejects(second.ready(), /before it was ready/);
      assert.match(second.output(), new RegExp(`data folder .* is in use by another asof process \\(PID ${pid}\\)`));

      const refused = await runCli(['ingest', 't', csv, '--data-dir', dir.path, '--create', '--kind', 'pk', '--primary-key', 'id']);
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, new RegExp(`in use by another asof process \\(PID ${pid}\\)`));
      assert.equal((await fetch(`${server.url}/tables/t`)).status, 404, 'the refused CLI wrote nothing');

      await server.kill('SIGKILL');
      assert.equal(JSON.parse(await readFile(join(dir.path, 'LOCK'), 'utf8')).pid, pid, 'kill -9 leaves the lock behind');
      const taken = await runCli(['ingest', 't', csv, '--data-dir', dir.path, '--create', '--kind', 'pk', '--primary-key', 'id']);
      assert.equal(taken.code, 0, taken.stderr);
      assert.equal(JSON.parse(taken.stdout).rows, 2);
      assert.equal(existsSync(join(dir.path, 'LOCK')), false, 'the CLI released the lock on exit');

      // A gracefully stopped server removes its lock too, and the next one serves what the CLI wrote.
      const again = await readyChild(dir.path);
      assert.deepEqual((await fetch(`${again.url}/tables/t/rows/2`).then((r) => r.json())).row, { id: 2, x: 20 });
      await again.stop();
      assert.equal(existsSync(join(dir.path, 'LOCK')), false);
    } finally {
      await dir.cleanup();
    }
  });
});
