/**
 * Module direction (STYLE.md rules 1 and 12), checked by `npm run depcheck`
 * in CI (.ci/run). The core never reaches up into an adapter or the
 * composition root; the engine never reaches up into what is derived from it.
 */
const CORE = '^src/(engine|ingest|features|online|offline|vectors|audit)/';

module.exports = {
  forbidden: [
    {
      name: 'core-imports-adapter',
      comment: 'Core folders are called by the adapters (REST, gRPC, CLI, Feast), never the other way round: a rule the adapters need belongs in a service.',
      severity: 'error',
      from: { path: CORE },
      to: { path: ['^src/(http|grpc|cli|feast)/', '^src/app\\.ts$'] },
    },
    {
      name: 'engine-imports-derived',
      comment: 'The engine is the changelog; features, online and offline state are views derived from it and depend on it, not it on them.',
      severity: 'error',
      from: { path: '^src/engine/' },
      to: { path: '^src/(features|online|offline|ingest)/' },
    },
    {
      name: 'product-imports-harness',
      comment: 'support/ (the child-server helper), bench/ and test/ drive the product from outside; the product never depends on them (support/ is compiled into dist/ only so the benches can run).',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(support|bench|test)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: a type from an adapter couples the core to it as much as a value does.
    tsPreCompilationDeps: true,
  },
};
