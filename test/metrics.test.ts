import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { Metrics, PlainCounter, PlainGauge, PlainHistogram } from '../src/metrics';

// The buckets of src/metrics.ts, for prom-client's own histogram to compare with.
const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

describe('the plain metric families', () => {
  it("export exactly what prom-client's own families export for the same calls", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const values = [0, 0.0001, 0.00011, 0.003, 0.02, 0.7, 3, 10, 11, 120];

    const c = new PlainCounter(ours, 'x_total', 'Counted.');
    const pc = new Counter({ name: 'x_total', help: 'Counted.', registers: [theirs] });
    const lc = new PlainCounter(ours, 'y_total', 'By reason.', ['reason']);
    const plc = new Counter({ name: 'y_total', help: 'By reason.', labelNames: ['reason'], registers: [theirs] });
    const g = new PlainGauge(ours, 'z_bytes', 'Now.', []);
    const pg = new Gauge({ name: 'z_bytes', help: 'Now.', registers: [theirs] });
    const h = new PlainHistogram(ours, 'a_seconds', 'Took.');
    const ph = new Histogram({ name: 'a_seconds', help: 'Took.', buckets: BUCKETS, registers: [theirs] });
    const lh = new PlainHistogram(ours, 'b_seconds', 'Took, by backend.', ['backend']);
    const plh = new Histogram({
      name: 'b_seconds',
      help: 'Took, by backend.',
      labelNames: ['backend'],
      buckets: BUCKETS,
      registers: [theirs],
    });

    c.inc();
    c.inc(41);
    pc.inc();
    pc.inc(41);
    lc.labels('invalid').inc(0);
    lc.labels('too_many').inc(3);
    plc.labels('invalid').inc(0);
    plc.labels('too_many').inc(3);
    g.set(7);
    g.set(5);
    pg.set(7);
    pg.set(5);
    for (const v of values) {
      h.observe(v);
      ph.observe(v);
      lh.labels('/var/log/a "quoted".log').observe(v * 2);
      plh.labels('/var/log/a "quoted".log').observe(v * 2);
    }
    lh.zero({ backend: 'idle' });
    plh.zero({ backend: 'idle' });

    expect(await ours.metrics()).to.equal(await theirs.metrics());
  });
});

describe('Metrics', () => {
  it('has every family it exports listed in docs/metrics.md, and nothing listed that it does not export', async () => {
    const metrics = new Metrics({ zone: 'z', version: 'v' });
    const exported = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name).sort();
    const doc = fs.readFileSync(path.resolve(__dirname, '../../docs/metrics.md'), 'utf8');
    const listed = [...doc.matchAll(/^\| `(meshaudit_[a-z_]+)` \|/gm)].map((m) => m[1]).sort();
    expect(listed).to.deep.equal(exported);
  });
});
