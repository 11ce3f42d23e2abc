// The layering of the house style, checked on the source: imports flow one way, the rule engine stays
// pure, and gRPC stays at the edges. `make lint` runs this file alone.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';

const SRC = path.resolve(__dirname, '../../src');
const IMPORT = /^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gm;

function sources(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((d) =>
      d.isDirectory() ? sources(path.join(dir, d.name)) : d.name.endsWith('.ts') ? [path.join(dir, d.name)] : [],
    );
}

/** module (relative to src, without .ts) -> imported specifiers, resolved to modules for relative ones. */
function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const file of sources(SRC)) {
    const text = fs.readFileSync(file, 'utf8');
    const from = path.relative(SRC, file).replace(/\.ts$/, '');
    const deps: string[] = [];
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1];
      if (!spec.startsWith('.')) {
        deps.push(spec);
        continue;
      }
      let target = path.relative(SRC, path.resolve(path.dirname(file), spec));
      if (fs.existsSync(path.join(SRC, target, 'index.ts'))) target = path.join(target, 'index');
      deps.push(target);
    }
    g.set(from, deps);
  }
  return g;
}

function layer(mod: string): string {
  return mod.includes('/') ? mod.slice(0, mod.indexOf('/')) : mod;
}

describe('architecture', () => {
  const g = graph();

  it('reads the whole source tree', () => {
    expect(g.size).to.be.greaterThan(30);
    expect(g.get('cli/sidecar')).to.include('pipeline/sequencer');
    expect(g.get('pipeline/single-records')).to.include('rules/index');
  });

  it('has no circular imports', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    const stack: string[] = [];
    const visit = (m: string): void => {
      if (state.get(m) === 'done' || !g.has(m)) return;
      if (state.get(m) === 'visiting') {
        cycles.push([...stack.slice(stack.indexOf(m)), m].join(' -> '));
        return;
      }
      state.set(m, 'visiting');
      stack.push(m);
      for (const d of g.get(m)!) visit(d);
      stack.pop();
      state.set(m, 'done');
    };
    for (const m of g.keys()) visit(m);
    expect(cycles).to.deep.equal([]);
  });

  it('keeps src/rules pure: no I/O, no YAML, no gRPC, nothing outside rules but the violations toolkit', () => {
    const bad: string[] = [];
    for (const [m, deps] of g) {
      if (layer(m) !== 'rules') continue;
      for (const d of deps) if (!d.startsWith('rules/') && layer(d) !== 'validators') bad.push(`${m} imports ${d}`);
    }
    expect(bad).to.deep.equal([]);
  });

  it("keeps src/auth pure: it decides; finding the credentials (files, sockets, gRPC) is the edges' work", () => {
    const bad: string[] = [];
    for (const [m, deps] of g) {
      if (layer(m) !== 'auth') continue;
      for (const d of deps) if (!d.startsWith('auth/') && d !== 'node:crypto') bad.push(`${m} imports ${d}`);
    }
    expect(bad).to.deep.equal([]);
  });

  it('keeps gRPC in src/server, src/client and the process entry points, and proto-loader in src/contract', () => {
    const bad: string[] = [];
    for (const [m, deps] of g) {
      for (const d of deps) {
        const grpc = d.startsWith('@grpc/') || d === 'grpc-health-check';
        if (
          d === '@grpc/proto-loader' ? layer(m) !== 'contract' : grpc && !['server', 'client', 'cli'].includes(layer(m))
        ) {
          bad.push(`${m} imports ${d}`);
        }
      }
    }
    expect(bad).to.deep.equal([]);
  });

  it('loads the .proto files in src/contract alone', () => {
    const bad: string[] = [];
    for (const file of sources(SRC)) {
      const m = path.relative(SRC, file).replace(/\.ts$/, '');
      if (layer(m) === 'contract') continue;
      if (/protoLoader\.|\.loadSync\(|['"`][\w/.-]+\.proto['"`]/.test(fs.readFileSync(file, 'utf8'))) bad.push(m);
    }
    expect(bad).to.deep.equal([]);
  });

  it('keeps src/client apart from src/server: a control plane embeds the client alone', () => {
    const bad: string[] = [];
    for (const [m, deps] of g) {
      if (layer(m) !== 'client') continue;
      for (const d of deps) if (layer(d) === 'server') bad.push(`${m} imports ${d}`);
    }
    expect(bad).to.deep.equal([]);
  });

  it('keeps demo/ to what an operator and a control plane use: the built process (bench/sidecar) and src/client', () => {
    const DEMO = path.resolve(__dirname, '../../demo');
    const bad: string[] = [];
    for (const file of sources(DEMO)) {
      for (const m of fs.readFileSync(file, 'utf8').matchAll(IMPORT)) {
        const spec = m[1];
        if (!spec.startsWith('.')) continue;
        const target = path.relative(path.resolve(DEMO, '..'), path.resolve(path.dirname(file), spec));
        if (target !== path.join('bench', 'sidecar') && !target.startsWith(path.join('src', 'client'))) {
          bad.push(`${path.relative(DEMO, file)} imports ${spec}`);
        }
      }
    }
    expect(bad).to.deep.equal([]);
  });

  it('lets imports flow one way, from the entry points down to the pure rules', () => {
    // Lowest first: a module may import its own layer and the layers before it, never one after it.
    const order = [
      'errors',
      'validators',
      'log',
      'metrics',
      'contract',
      'rules',
      'events',
      'auth',
      'config',
      'backends',
      'store',
      'integrity',
      'wire',
      'record',
      'pipeline',
      'forward',
      'server',
      'admin',
      'client',
      'cli',
    ];
    const unknown = [...g.keys()].map(layer).filter((l) => !order.includes(l));
    expect(unknown, 'every top-level module has a place in the order').to.deep.equal([]);
    const bad: string[] = [];
    for (const [m, deps] of g) {
      const from = order.indexOf(layer(m));
      for (const d of deps) {
        if (!g.has(d)) continue; // a package
        if (order.indexOf(layer(d)) > from) bad.push(`${m} imports ${d}`);
      }
    }
    expect(bad).to.deep.equal([]);
  });

  it('mirrors src/ (and bench/) in test/: a unit test is named after the module it tests; end-to-end and fault tests are in test/e2e and test/faults', () => {
    const TEST = path.resolve(__dirname, '../../test');
    const ROOT = path.resolve(TEST, '..');
    const misplaced: string[] = [];
    const walk = (dir: string): void => {
      for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, d.name);
        const rel = path.relative(TEST, file);
        if (d.isDirectory()) {
          if (!['e2e', 'faults', 'support'].includes(rel)) walk(file);
          continue;
        }
        if (!d.name.endsWith('.test.ts') || rel === 'architecture.test.ts') continue;
        const module = rel.replace(/\.test\.ts$/, '.ts');
        const under = module.startsWith(`bench${path.sep}`) ? module : path.join('src', module);
        if (!fs.existsSync(path.join(ROOT, under))) misplaced.push(`test/${rel} (no ${under})`);
      }
    };
    walk(TEST);
    expect(misplaced).to.deep.equal([]);
  });
});
