// The Grafana dashboard (deploy/grafana/meshaudit.json) and the alerting rules (deploy/prometheus/*.yaml)
// query only what the sidecar exports: every metric their PromQL names exists in a new Metrics registry
// (in process) and in /stats/prometheus of the running sidecar; the files have the shape Grafana and
// Prometheus load; each alert has its runbook section. The PromQL reading itself is tested first, with
// tables of expressions and of names that must fail the check.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { load } from 'js-yaml';
import { Metrics } from '../../src/metrics';
import { tempDir } from '../support/helpers';
import { spawnSidecar, writeSidecarConfig } from '../support/process';
import {
  type Family,
  familiesOf,
  familyName,
  promqlNames,
  type Query,
  sampleNames,
  unknownNames,
} from '../support/promql';

/** The repository root: this file runs as dist/test/e2e/dashboards.test.js. */
const ROOT = path.resolve(__dirname, '../../..');
const DASHBOARD = 'deploy/grafana/meshaudit.json';
const ALERTS = 'deploy/prometheus/meshaudit-alerts.yaml';
const PROMETHEUS_RULE = 'deploy/prometheus/meshaudit-prometheusrule.yaml';
const RUNBOOK = 'deploy/prometheus/README.md';
/** The uid of every panel's and query's data source: the dashboard's `datasource` variable. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JavaScript template
const DATASOURCE = '${datasource}';

const read = (file: string): string => fs.readFileSync(path.join(ROOT, file), 'utf8');

interface Target {
  expr?: unknown;
  refId?: unknown;
  datasource?: { type?: unknown; uid?: unknown };
}
interface Panel {
  id?: unknown;
  type?: unknown;
  title?: unknown;
  datasource?: { type?: unknown; uid?: unknown };
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: unknown;
  definition?: unknown;
  datasource?: { uid?: unknown };
}
interface Dashboard {
  schemaVersion: unknown;
  uid: unknown;
  title: unknown;
  panels: Panel[];
  templating: { list: Variable[] };
  annotations?: { list: Array<{ name: string; expr?: string }> };
}
interface Rule {
  alert?: unknown;
  expr?: unknown;
  for?: unknown;
  labels?: { severity?: unknown };
  annotations?: { summary?: unknown; description?: unknown; runbook_url?: unknown };
}
interface RuleGroups {
  groups: Array<{ name: string; rules: Rule[] }>;
}

const dashboard = (): Dashboard => JSON.parse(read(DASHBOARD));
const alertRules = (): RuleGroups => load(read(ALERTS)) as RuleGroups;

/** Every panel, the panels of rows included (a collapsed row keeps its panels inside it). */
function panelsOf(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/**
 * The PromQL of a query variable: `label_values(<selector>, <label>)` reads the selector (the one-argument
 * form reads no metric); `query_result(<expr>)` its expression; anything else is PromQL as it is.
 */
function variableExpr(query: string): string | undefined {
  const labelValues = /^\s*label_values\((.*)\)\s*$/s.exec(query);
  if (labelValues !== null) {
    const comma = labelValues[1].lastIndexOf(',');
    return comma < 0 ? undefined : labelValues[1].slice(0, comma);
  }
  const queryResult = /^\s*query_result\((.*)\)\s*$/s.exec(query);
  return queryResult === null ? query : queryResult[1];
}

/** The PromQL of the dashboard: panel targets, query variables, annotations. */
function dashboardQueries(d: Dashboard): Query[] {
  const queries: Query[] = [];
  for (const p of panelsOf(d)) {
    for (const t of p.targets ?? []) {
      queries.push({ where: `${DASHBOARD} panel ${p.id} "${p.title}" ${t.refId}`, expr: String(t.expr) });
    }
  }
  for (const v of d.templating.list.filter((v) => v.type === 'query')) {
    const q = typeof v.query === 'object' && v.query !== null ? (v.query as { query: string }).query : v.query;
    const expr = variableExpr(String(q));
    if (expr !== undefined) queries.push({ where: `${DASHBOARD} variable ${v.name}`, expr });
  }
  for (const a of d.annotations?.list ?? []) {
    if (a.expr !== undefined) queries.push({ where: `${DASHBOARD} annotation "${a.name}"`, expr: a.expr });
  }
  return queries;
}

function alertQueries(rules: RuleGroups): Query[] {
  return rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `${ALERTS} ${r.alert}`, expr: String(r.expr) })));
}

const allQueries = (): Query[] => [...dashboardQueries(dashboard()), ...alertQueries(alertRules())];

/**
 * The series the alert rules read that have no sample in `exposition`, one line each. increase() and
 * rate() count from a series' first sample: a counter that appears at its first event with 1 never
 * increases, and the alert on that event never fires. `except` leaves out series by name.
 */
function unsampled(exposition: string, except: (family: string) => boolean = () => false): string[] {
  const samples = sampleNames(exposition);
  return alertQueries(alertRules()).flatMap((q) =>
    promqlNames(q.expr)
      .metrics.filter((m) => !samples.has(m) && !except(m))
      .map((m) => `${q.where}: no sample of "${m}" before the first event`),
  );
}

/**
 * The families of a registry with the label names each is declared with (complete, unlike those an
 * exposition's samples show): prom-client keeps `labelNames` on the metric, which its typings leave out.
 */
function registryFamilies(metrics: Metrics): Map<string, Family> {
  const families = new Map<string, Family>();
  for (const m of metrics.registry.getMetricsAsArray()) {
    const labels = (m as unknown as { labelNames?: readonly string[] }).labelNames ?? [];
    families.set(m.name, { type: String(m.type), labels: new Set(labels) });
  }
  return families;
}

/** The families of the sidecar's registry as main.ts builds it (its process_* and nodejs_* metrics too). */
const SIDECAR_FAMILIES: ReadonlyMap<string, Family> = registryFamilies(
  new Metrics({ zone: 'default', version: '0.0.0', processMetrics: true }),
);

describe('the Grafana dashboard and the Prometheus alerting rules (deploy/)', function () {
  this.timeout(30_000);

  describe('reading PromQL', () => {
    const CASES: Array<{ expr: string; metrics: string[]; grouping?: string[]; labels?: Record<string, string[]> }> = [
      { expr: 'meshaudit_ready == 0', metrics: ['meshaudit_ready'] },
      { expr: 'rate(a_total[5m])', metrics: ['a_total'] },
      { expr: 'rate (a_total [5m:30s])', metrics: ['a_total'] },
      {
        expr: 'histogram_quantile(0.99, sum by (zone, le) (rate(x_bucket{instance=~"$instance"}[$__rate_interval])))',
        metrics: ['x_bucket'],
        grouping: ['zone', 'le'],
        labels: { x_bucket: ['instance'] },
      },
      {
        expr: '(increase(b_total[5m]) > 0) * on (instance, job) group_left (zone) meshaudit_info',
        metrics: ['b_total', 'meshaudit_info'],
        grouping: ['instance', 'job', 'zone'],
      },
      { expr: 'a / b < 0.40 and predict_linear(a[6h], 24 * 3600) < 0', metrics: ['a', 'b', 'a'] },
      { expr: 'count(r == 0) or vector(0)', metrics: ['r'] },
      { expr: 'sum(increase(w_total[$__range])) or vector(0)', metrics: ['w_total'] },
      {
        expr: 'c_total{reason!~"draining|taken_over", job="a}b,c"} offset 5m',
        metrics: ['c_total'],
        labels: { c_total: ['reason', 'job'] },
      },
      { expr: "d{l='it\\'s'} unless ignoring (x) e", metrics: ['d', 'e'], grouping: ['x'], labels: { d: ['l'] } },
      { expr: 'SUM BY (y) (f) + sum without(le)(g) AND bool h', metrics: ['f', 'g', 'h'], grouping: ['y', 'le'] },
      { expr: '1e3 * i + 0x1f - .5 + 2h', metrics: ['i'] },
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, in PromQL
      { expr: 'j / ${divisor} * $factor', metrics: ['j'] },
      { expr: 'topk(3, k)\n# not_a_metric here\n', metrics: ['k'] },
      { expr: 'm{}', metrics: ['m'], labels: { m: [] } },
      { expr: 'inf > n:recorded:rate5m', metrics: ['n:recorded:rate5m'] },
    ];
    for (const c of CASES) {
      it(`reads ${JSON.stringify(c.expr)}`, () => {
        const names = promqlNames(c.expr);
        expect(names.metrics).to.deep.equal(c.metrics);
        expect(names.grouping).to.deep.equal(c.grouping ?? []);
        for (const [metric, labels] of Object.entries(c.labels ?? {})) {
          expect(names.selectors.find((s) => s.metric === metric)?.labels).to.deep.equal(labels);
        }
      });
    }

    it('refuses what it cannot read rather than guess', () => {
      expect(() => promqlNames('rate(a[5m)')).to.throw('unterminated [');
      expect(() => promqlNames('a{b="c"')).to.throw('unbalanced {');
      expect(() => promqlNames('a{b="c}')).to.throw('unterminated string');
      expect(() => promqlNames('sum by (a b')).to.throw('unbalanced (');
    });
  });

  describe('checking queries against a registry', () => {
    // Each query names something the sidecar's registry does not export: the check must say so.
    const BAD: Array<{ expr: string; problem: string }> = [
      {
        expr: 'rate(meshaudit_event_received_total[5m])',
        problem: 'metric "meshaudit_event_received_total" does not exist',
      },
      { expr: 'meshaudit_ready_bucket', problem: 'metric "meshaudit_ready_bucket" does not exist' },
      {
        expr: 'rate(meshaudit_written_bytes_total_count[5m])',
        problem: 'metric "meshaudit_written_bytes_total_count" does not exist',
      },
      // A histogram's own name is no series: Prometheus has only its _bucket, _sum and _count.
      { expr: 'meshaudit_ack_latency_seconds > 1', problem: 'metric "meshaudit_ack_latency_seconds" does not exist' },
      {
        expr: 'sum(rate(meshaudit_ack_latency_seconds_bucket[5m])) / meshaudit_streams_opened',
        problem: 'metric "meshaudit_streams_opened" does not exist',
      },
      {
        expr: 'meshaudit_write_failures_total{reason="x"}',
        problem: 'metric "meshaudit_write_failures_total" has no label "reason"',
      },
      {
        expr: 'meshaudit_ready_count{le="1"}',
        problem: 'metric "meshaudit_ready_count" does not exist',
      },
      {
        expr: 'meshaudit_checkpoint_commit_duration_seconds_sum{le="1"}',
        problem: 'metric "meshaudit_checkpoint_commit_duration_seconds_sum" has no label "le"',
      },
      {
        expr: 'sum by (backend) (rate(meshaudit_events_recorded_total[5m]))',
        problem: 'no metric of the expression has the label "backend"',
      },
      {
        expr: 'sum by (zone) (rate(meshaudit_events_recorded_total[5m]))',
        problem: 'no metric of the expression has the label "zone"',
      },
    ];
    for (const c of BAD) {
      it(`fails ${JSON.stringify(c.expr)}: ${c.problem}`, () => {
        expect(unknownNames([{ where: 'q', expr: c.expr }], SIDECAR_FAMILIES, { checkLabels: true })).to.deep.equal([
          `q: ${c.problem}`,
        ]);
      });
    }

    const GOOD = [
      'histogram_quantile(0.5, sum by (le) (rate(meshaudit_ack_latency_seconds_bucket{le!="+Inf"}[5m])))',
      'rate(meshaudit_ack_latency_seconds_sum[5m]) / rate(meshaudit_ack_latency_seconds_count[5m])',
      'sum by (zone) (rate(meshaudit_events_recorded_total[5m]) * on (instance, job) group_left (zone) meshaudit_info)',
      'meshaudit_write_failures_total{backend="a", instance="b", job="c"}',
      'rate(process_cpu_seconds_total[1m])',
    ];
    for (const expr of GOOD) {
      it(`passes ${JSON.stringify(expr)}`, () => {
        expect(unknownNames([{ where: 'q', expr }], SIDECAR_FAMILIES, { checkLabels: true })).to.deep.equal([]);
      });
    }

    it('reads the families of an exposition from its TYPE lines, with the labels of its samples', () => {
      const families = familiesOf(
        [
          '# HELP a_total A.',
          '# TYPE a_total counter',
          'a_total{reason="x",kind="y"} 1',
          '# TYPE h_seconds histogram',
          'h_seconds_bucket{le="0.1",backend="b"} 0',
          'h_seconds_sum{backend="b"} 0',
          '# TYPE s summary',
          's{quantile="0.5"} 2',
          '# TYPE unlabelled gauge',
          '',
        ].join('\n'),
      );
      expect([...families].map(([name, f]) => [name, f.type, [...f.labels]])).to.deep.equal([
        ['a_total', 'counter', ['reason', 'kind']],
        ['h_seconds', 'histogram', ['le', 'backend']],
        ['s', 'summary', ['quantile']],
        ['unlabelled', 'gauge', []],
      ]);
      expect(
        unknownNames([{ where: 'q', expr: 's_sum + s_count + s + h_seconds_count - s_bucket' }], families),
      ).to.deep.equal(['q: metric "s_bucket" does not exist']);
    });
  });

  describe('the dashboard', () => {
    it('is a Grafana dashboard of a current schema, with a Prometheus data source variable, zone and instance', () => {
      const d = dashboard();
      expect(d.schemaVersion).to.be.a('number').at.least(39);
      expect(d.uid).to.equal('meshaudit');
      expect(d.title).to.be.a('string');
      const vars = new Map(d.templating.list.map((v) => [v.name, v]));
      expect(vars.get('datasource')).to.include({ type: 'datasource', query: 'prometheus' });
      expect(vars.get('zone')?.type).to.equal('query');
      expect(vars.get('zone')?.definition).to.equal('label_values(meshaudit_info, zone)');
      expect(vars.get('instance')?.definition).to.equal('label_values(meshaudit_info{zone=~"$zone"}, instance)');
      for (const v of d.templating.list.filter((v) => v.type === 'query')) {
        expect(v.datasource?.uid, `variable ${v.name}`).to.equal(DATASOURCE);
      }
    });

    it('has panels with unique ids, on the grid without overlapping, each querying the datasource variable', () => {
      const panels = panelsOf(dashboard());
      const ids = panels.map((p) => p.id);
      expect(ids.every((id) => Number.isInteger(id))).to.equal(true);
      expect(new Set(ids).size).to.equal(ids.length);
      for (const [i, p] of panels.entries()) {
        const g = p.gridPos!;
        expect(g.x + g.w, `panel ${p.id} width`).to.be.at.most(24);
        for (const q of panels.slice(i + 1)) {
          const h = q.gridPos!;
          const overlap = g.x < h.x + h.w && h.x < g.x + g.w && g.y < h.y + h.h && h.y < g.y + g.h;
          expect(overlap, `panels ${p.id} and ${q.id} overlap`).to.equal(false);
        }
        if (p.type === 'row') continue;
        expect(p.title, `panel ${p.id}`).to.be.a('string').that.is.not.empty;
        expect(p.datasource, `panel ${p.id}`).to.deep.equal({ type: 'prometheus', uid: DATASOURCE });
        expect(p.targets, `panel ${p.id} targets`).to.be.an('array').that.is.not.empty;
        const refIds = p.targets!.map((t) => t.refId);
        expect(new Set(refIds).size, `panel ${p.id} refIds`).to.equal(refIds.length);
        for (const t of p.targets!) {
          expect(t.expr, `panel ${p.id} ${t.refId}`).to.be.a('string').that.is.not.empty;
          expect(t.datasource?.uid, `panel ${p.id} ${t.refId}`).to.equal(DATASOURCE);
          // The zone and instance selection applies to every panel: the instance variable lists the zone's.
          expect(t.expr, `panel ${p.id} ${t.refId}`).to.include('instance=~"$instance"');
        }
      }
    });

    it('shows every meshaudit_* family the sidecar exports', () => {
      const queried = new Set(
        dashboardQueries(dashboard()).flatMap((q) =>
          promqlNames(q.expr).metrics.map((m) => familyName(m, SIDECAR_FAMILIES)),
        ),
      );
      const meshaudit = [...SIDECAR_FAMILIES.keys()].filter((name) => name.startsWith('meshaudit_'));
      expect(
        meshaudit.filter((name) => !queried.has(name)),
        'families without a panel',
      ).to.deep.equal([]);
    });
  });

  describe('the alerting rules', () => {
    it('are Prometheus rule groups: each rule has alert, expr, for, a severity, a summary and a description', () => {
      const rules = alertRules().groups.flatMap((g) => g.rules);
      expect(rules).to.not.be.empty;
      const names = rules.map((r) => r.alert);
      expect(new Set(names).size).to.equal(names.length);
      for (const r of rules) {
        expect(r.alert).to.match(/^Meshaudit[A-Z]\w+$/);
        expect(r.expr, String(r.alert)).to.be.a('string').that.is.not.empty;
        expect(r.for, String(r.alert)).to.match(/^\d+[smh]$/);
        expect(r.labels?.severity, String(r.alert)).to.be.oneOf(['critical', 'warning', 'info']);
        expect(r.annotations?.summary, String(r.alert)).to.be.a('string').that.is.not.empty;
        expect(r.annotations?.description, String(r.alert)).to.be.a('string').that.is.not.empty;
        // Routed per zone: every alert carries the zone of meshaudit_info.
        expect(promqlNames(String(r.expr)).grouping, String(r.alert)).to.include('zone');
      }
    });

    it('point each alert at its runbook section in deploy/prometheus/README.md', () => {
      const anchors = new Set(
        [...read(RUNBOOK).matchAll(/^#{1,6} +(.+)$/gm)].map((m) =>
          m[1]
            .trim()
            .toLowerCase()
            .replace(/[^\w\- ]/g, '')
            .replace(/ /g, '-'),
        ),
      );
      for (const r of alertRules().groups.flatMap((g) => g.rules)) {
        expect(r.annotations?.runbook_url, String(r.alert)).to.equal(`${RUNBOOK}#${String(r.alert).toLowerCase()}`);
        expect(anchors.has(String(r.alert).toLowerCase()), `${RUNBOOK} has a section ${r.alert}`).to.equal(true);
      }
    });

    it('are the same rules in the PrometheusRule of the Prometheus Operator', () => {
      const crd = load(read(PROMETHEUS_RULE)) as { apiVersion: string; kind: string; spec: RuleGroups };
      expect(crd.apiVersion).to.equal('monitoring.coreos.com/v1');
      expect(crd.kind).to.equal('PrometheusRule');
      expect(crd.spec).to.deep.equal(alertRules());
    });
  });

  describe('the metrics they query', () => {
    it('exist, with the labels they use, in the registry the sidecar builds (in process)', () => {
      expect(unknownNames(allQueries(), SIDECAR_FAMILIES, { checkLabels: true })).to.deep.equal([]);
    });

    it('have their series from the start, at 0, in the registry the sidecar builds (in process)', async () => {
      const metrics = new Metrics({
        zone: 'default',
        version: '0.0.0',
        filesystems: () => [{ name: 'data', path: tempDir() }],
      });
      // The writer makes the series of each backend it has (its key is the label): the live test checks them.
      // A forwarder makes its own as it starts, as here: its alerts have a sample before its first record.
      metrics.addForwarder('nats', () => ({ lagRecords: 0, lagSeconds: 0, connected: true, heldFiles: 0 }));
      const perBackend = (name: string) => registryFamilies(metrics).get(name)?.labels.has('backend') ?? false;
      expect(unsampled(await metrics.prometheus(), perBackend)).to.deep.equal([]);
    });

    it('exist in GET /stats/prometheus of the running sidecar, with their series from the start', async () => {
      const dir = tempDir();
      const sidecar = spawnSidecar(['--config', writeSidecarConfig(dir)], { cwd: dir });
      try {
        await sidecar.ready;
        const res = await fetch(`http://127.0.0.1:${await sidecar.adminPort}/stats/prometheus`);
        expect(res.status).to.equal(200);
        expect(res.headers.get('content-type')).to.match(/^text\/plain/);
        const text = await res.text();
        const families = familiesOf(text);
        expect(families.has('meshaudit_info')).to.equal(true);
        // No forwarder is configured: its families are declared, without series (see above).
        const forwarders = (name: string) => name.startsWith('meshaudit_forward_');
        expect(unknownNames(allQueries(), families)).to.deep.equal([]);
        expect(unsampled(text, forwarders)).to.deep.equal([]);
      } finally {
        sidecar.proc.kill('SIGTERM');
        await sidecar.exited;
      }
    });
  });
});
