#!/usr/bin/env node
// Checks module direction with dependency-cruiser's API and the rules in
// .dependency-cruiser.cjs (`npm run depcheck`, run by .ci/run). The API, not
// the depcruise CLI: the CLI of dependency-cruiser 18 refuses to start on
// Node 20, which asof supports; the API it wraps runs there unchanged.
// Arguments: folders to check (default src), relative to the working directory.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cruise } from 'dependency-cruiser';

const require = createRequire(import.meta.url);
const { forbidden, options } = require('../.dependency-cruiser.cjs');
const roots = process.argv.slice(2).length ? process.argv.slice(2) : ['src'];
const tsConfig = existsSync('tsconfig.json') ? { fileName: 'tsconfig.json' } : undefined;
const result = await cruise(roots, { ...options, validate: true, ruleSet: { forbidden }, outputType: 'err' }, {}, tsConfig ? { tsConfig } : {});
process.stdout.write(typeof result.output === 'string' ? result.output : '');
// exitCode is the number of violations; any is a failure.
if (result.exitCode !== 0) process.exit(1);
process.stdout.write(`depcheck: ${roots.join(', ')}: no module-direction violations\n`);
