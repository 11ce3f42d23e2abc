// The benchmark's report: one row per scenario, the targets as PASS/MISS, and the machine it
// ran on; as a text table for stdout and as markdown for bench/results/latest.md.
import type { CheckResult } from './check';
import type { Percentiles } from './loadgen';
import type { ProfileSummary } from './profile';

export interface ScenarioResult {
  id: string;
  title: string;
  /** Events (calls for Record) per second in the measured phase; the offered load's achieved rate for a rate scenario. */
  eventsPerSec: number | null;
  measured: number;
  elapsedMs: number;
  latencyMs: Percentiles | null;
  /** VmHWM of the server process (the floor's own process for the floor). */
  peakRssMb: number | null;
  /** Server CPU (user + system, all threads) per 100k events, in seconds, and as a share of one core. */
  serverCpuPer100k: number | null;
  serverCorePct: number | null;
  /** The load generator's own CPU, the same way: it must stay well below a core. */
  clientCpuPer100k: number | null;
  clientCorePct: number | null;
  /** What this scenario is compared with: its throughput divided by the floor's and the naive baseline's. */
  ratioFloor: number | null;
  ratioNaive: number | null;
  /** Rotated files produced: rotation must really happen during the run. */
  rotatedFiles: number | null;
  check: CheckResult | null;
  errors: string[];
  notes: string[];
  /** How long each step took (start, warm-up, measured phase, stop, check). */
  timings: string[];
  profile?: ProfileSummary;
}

/** A result with nothing measured yet. */
export function emptyResult(id: string, title: string): ScenarioResult {
  return {
    id,
    title,
    eventsPerSec: null,
    measured: 0,
    elapsedMs: 0,
    latencyMs: null,
    peakRssMb: null,
    serverCpuPer100k: null,
    serverCorePct: null,
    clientCpuPer100k: null,
    clientCorePct: null,
    ratioFloor: null,
    ratioNaive: null,
    rotatedFiles: null,
    check: null,
    errors: [],
    notes: [],
    timings: [],
  };
}

export interface Target {
  name: string;
  want: string;
  got: string;
  /** null: could not be evaluated (a scenario did not run or failed). */
  pass: boolean | null;
}

export interface Machine {
  cpuModel: string;
  cores: number;
  node: string;
  platform: string;
  date: string;
  mode: 'full' | 'quick';
  /** The sidecar's entry point: this checkout's, or another build's (BENCH_SIDECAR). */
  sidecar: string;
  /** Node flags of the sidecar (its build's launchers' own), then those of every server (BENCH_NODE_FLAGS). */
  sidecarNodeFlags: string;
  serverNodeFlags: string;
}

const fixed = (v: number | null | undefined, digits: number): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
const thousands = (v: number | null): string =>
  v === null || !Number.isFinite(v) ? '-' : Math.round(v).toLocaleString('en-US');

function checkText(c: CheckResult | null): string {
  if (c === null) return '-';
  if (c.ok) return `OK (${c.files} files)`;
  return `FAILED: ${c.missing} missing, ${c.duplicated} duplicated, ${c.unexpected} unexpected, ${c.tornFiles} torn`;
}

const HEADERS = [
  'scenario',
  'events/s',
  'x floor',
  'x naive',
  'p50 ms',
  'p99 ms',
  'p99.9 ms',
  'peak RSS MB',
  'server CPU s/100k',
  'server %core',
  'loadgen CPU s/100k',
  'loadgen %core',
  'exactly once',
];

function cells(r: ScenarioResult): string[] {
  if (r.errors.length > 0 && r.eventsPerSec === null) return [r.title, 'ERROR', ...HEADERS.slice(2).map(() => '-')];
  return [
    r.title,
    thousands(r.eventsPerSec),
    fixed(r.ratioFloor, 2),
    fixed(r.ratioNaive, 2),
    fixed(r.latencyMs?.p50, 2),
    fixed(r.latencyMs?.p99, 2),
    fixed(r.latencyMs?.p999, 2),
    fixed(r.peakRssMb, 0),
    fixed(r.serverCpuPer100k, 3),
    fixed(r.serverCorePct, 0),
    fixed(r.clientCpuPer100k, 3),
    fixed(r.clientCorePct, 0),
    checkText(r.check),
  ];
}

export function textTable(results: readonly ScenarioResult[]): string {
  const rows = [HEADERS, ...results.map(cells)];
  const widths = HEADERS.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]): string =>
    r.map((c, i) => (i === 0 || i === r.length - 1 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

export function targetsText(targets: readonly Target[]): string {
  return targets
    .map((t) => `${t.pass === null ? 'N/A ' : t.pass ? 'PASS' : 'MISS'}  ${t.name}: want ${t.want}, got ${t.got}`)
    .join('\n');
}

export function notesText(results: readonly ScenarioResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    for (const e of r.errors) out.push(`${r.title}: ERROR ${e}`);
    for (const n of r.notes) out.push(`${r.title}: ${n}`);
    if (r.check && !r.check.ok) for (const ex of r.check.examples) out.push(`${r.title}: exactly-once: ${ex}`);
  }
  return out.join('\n');
}

export function markdown(machine: Machine, results: readonly ScenarioResult[], targets: readonly Target[]): string {
  const row = (c: string[]): string => `| ${c.join(' | ')} |`;
  const notes = notesText(results);
  return [
    `# meshaudit benchmark (${machine.mode})`,
    '',
    `- date: ${machine.date}`,
    `- CPU: ${machine.cpuModel}, ${machine.cores} cores`,
    `- Node.js ${machine.node} on ${machine.platform}`,
    `- sidecar: the real process (node ${machine.sidecarNodeFlags}), file backend with rotation; load generator: a separate process on loopback`,
    `- sidecar build: ${machine.sidecar}`,
    ...(machine.serverNodeFlags ? [`- BENCH_NODE_FLAGS for every server: ${machine.serverNodeFlags}`] : []),
    '',
    row(HEADERS),
    row(HEADERS.map((_, i) => (i === 0 || i === HEADERS.length - 1 ? '---' : '---:'))),
    ...results.map((r) => row(cells(r))),
    '',
    '## Targets (issue 4)',
    '',
    ...targets.map(
      (t) => `- ${t.pass === null ? 'N/A' : t.pass ? 'PASS' : 'MISS'} ${t.name}: want ${t.want}, got ${t.got}`,
    ),
    ...(notes ? ['', '## Notes', '', ...notes.split('\n').map((n) => `- ${n}`)] : []),
    '',
  ].join('\n');
}
