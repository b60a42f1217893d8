#!/usr/bin/env node
// Runs the compiled CLI (`npm run build`, or `npm start`, compiles it). In a
// checkout that was not built yet, runs the TypeScript sources through tsx
// (a devDependency), so `npx asof help` works right after `npm ci`.
import { existsSync } from 'node:fs';

const built = new URL('../dist/src/cli/main.js', import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    console.error('asof is not built yet: run `npm run build`');
    process.exit(1);
  }
  register();
  await import(new URL('../src/cli/main.ts', import.meta.url).href);
}
