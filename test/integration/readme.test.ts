/**
 * The README's walk-through, run as a newcomer would: every ```sh block that
 * follows a `<!-- readme-test -->` marker in README.md runs, in order, in one
 * bash, against a real asof process (its port put in place of 8080), and
 * each command followed by a `# {...}` comment must print that output. So
 * the README and what asof does cannot drift apart.
 *
 * Expected outputs are compared as text after removing whitespace outside
 * strings; `…` in them stands for any text (times, long lists), and a
 * trailing `   (remark)` is a remark, not output. A command's output that is
 * not shown in the README is not checked (it still has to succeed).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { killAll, startChild } from '../child-server.js';
import { tempDir } from '../helpers.js';

after(killAll);

interface Step {
  /** The command (continuation lines included). */
  command: string;
  /** The output the README shows for it, if any. */
  expect?: string;
}

/** The marked sh blocks of the README, split into commands and the outputs shown under them. */
export function walkthrough(readme: string): Step[] {
  const steps: Step[] = [];
  const blocks = [...readme.matchAll(/<!-- readme-test -->\s*\n```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  for (const block of blocks) {
    const lines = block.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if (line.trim() === '') continue;
      if (line.startsWith('#')) {
        // An output comment belongs to the command before it; other comments are prose.
        const last = steps[steps.length - 1];
        if (/^# [{[]/.test(line) && last && last.expect === undefined) {
          let text = line.slice(2);
          while (i + 1 < lines.length && /^#  /.test(lines[i + 1])) text += lines[++i].slice(2);
          last.expect = text.replace(/\s{3,}\(.*\)\s*$/, '');
        }
        continue;
      }
      let command = line;
      while (/(\\|\|)\s*$/.test(command) || open(command)) command += '\n' + lines[++i];
      steps.push({ command });
    }
  }
  return steps;
}

/** True while a command has an unclosed single quote (a JSON body over several lines). */
const open = (s: string): boolean => (s.match(/'/g) ?? []).length % 2 === 1;

/** Whitespace outside JSON strings removed, so the README may wrap its outputs. */
const squeeze = (s: string): string => s.replace(/("(?:[^"\\]|\\.)*")|\s+/g, (_m, str: string | undefined) => str ?? '');

function matches(expected: string, actual: string): boolean {
  const parts = squeeze(expected).split(/…|\.\.\./).map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp('^' + parts.join('[\\s\\S]*?') + '$').test(squeeze(actual));
}

test('the README walk-through prints what the README shows, against a real server', { timeout: 120_000 }, async () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const steps = walkthrough(readme);
  assert.ok(steps.length >= 15, `found ${steps.length} commands in the marked blocks`);
  assert.ok(steps.filter((s) => s.expect).length >= 5, 'and outputs to check');
  const dir = await tempDir('asof-readme-');
  const child = await startChild(join(dir.path, 'data'));
  try {
    await child.ready();
    const port = new URL(child.url).port;
    // Each command runs in a bash of its own; shell variables the README sets (NOW_MS=...) are carried into the later ones.
    let vars = '';
    for (const step of steps) {
      if (/^[A-Z_]+=\S/.test(step.command)) {
        vars += step.command + '\n';
        continue;
      }
      // A live follow never ends by itself: give it a second, as a reader would press Ctrl-C.
      const command = step.command.replaceAll('localhost:8080', `localhost:${port}`).replace(/^curl -sN /, 'curl -sN --max-time 1 ');
      const r = spawnSync('bash', ['-o', 'pipefail', '-c', vars + command], { cwd: dir.path, encoding: 'utf8', env: { ...process.env, PORT: port } });
      const out = r.stdout.trim();
      if (!/--max-time 1/.test(command)) assert.equal(r.status, 0, `${step.command}\nexited ${r.status}: ${r.stderr}`);
      if (step.expect !== undefined) assert.ok(matches(step.expect, out), `${step.command}\nREADME shows: ${step.expect}\nasof printed: ${out}`);
    }
  } finally {
    await child.kill();
    await dir.cleanup();
  }
});

test('the harness: outputs match with … as a wildcard and wrapped lines; a different value does not', () => {
  const steps = walkthrough('<!-- readme-test -->\n```sh\n# prose\ncurl -s x -d \'{\n  "a": 1}\'\n# {"a":1,\n#  "b":"x y"}\ncurl -s y\n# {"t":"…","n":2}   (a remark)\n```\n');
  assert.deepEqual(steps, [
    { command: 'curl -s x -d \'{\n  "a": 1}\'', expect: '{"a":1, "b":"x y"}' },
    { command: 'curl -s y', expect: '{"t":"…","n":2}' },
  ]);
  assert.ok(matches(steps[0].expect!, '{"a": 1, "b": "x y"}'));
  assert.ok(!matches(steps[0].expect!, '{"a":1,"b":"xy"}'));
  assert.ok(matches(steps[1].expect!, '{"t":"2026-01-01T00:00:00.000Z","n":2}'));
  assert.ok(!matches(steps[1].expect!, '{"t":"2026","n":0}'));
});

test('the CLI as a newcomer meets it: `npx asof --help` prints asof\'s help, and client commands default to PORT', { timeout: 120_000 }, () => {
  const root = new URL('../..', import.meta.url).pathname;
  const help = spawnSync('npx', ['asof', '--help'], { cwd: root, encoding: 'utf8' });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^usage: asof <command>/);
  const ingest = spawnSync(process.execPath, ['bin/asof.js', 'ingest', '--help'], { cwd: root, encoding: 'utf8', env: { ...process.env, PORT: '9123' } });
  assert.match(ingest.stdout, /default http:\/\/127\.0\.0\.1:9123\)/);
});
