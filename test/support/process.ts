// The real built sidecar for the tests: spawning it, its config, a free port. The code lives in
// bench/sidecar.ts, which the benchmark and the soak use too (bench/ imports nothing from test/).
export * from '../../bench/sidecar';
