// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by where the code lives
// (meshaudit's src/, grpc-js, protobufjs, Node internals, GC), so the report says where the time goes.
import * as fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/**
 * A time window on the monotonic clock in µs: V8 stamps samples with the same clock as
 * process.hrtime, so the orchestrator can keep only the measured phase (not start-up, nor the idle
 * wait while the load generator prepares).
 */
export interface ProfileWindow {
  fromUs: number;
  toUs: number;
}

export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Whether only the measured phase was kept. */
  windowed: boolean;
  /** Self time by function, largest first. */
  functions: Array<{ name: string; where: string; selfMs: number; pct: number }>;
  /** Self time by area, largest first. */
  areas: Array<{ area: string; selfMs: number; pct: number }>;
}

/** Which part of the stack a function belongs to, from its URL (and its name, for code without one). */
function areaOf(url: string, functionName: string): string {
  if (url === '') {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'V8/native (program)';
    // protobufjs generates its codecs with new Function: they have no URL.
    if (/\$(decode|encode|toObject|fromObject|verify)$/.test(functionName)) return 'protobufjs (generated codecs)';
    if (/^(utf8|latin1|ascii|ucs2|hex|base64)Slice$/.test(functionName)) return 'Buffer#toString (string decoding)';
    if (functionName.startsWith('RegExp: ')) return 'regular expressions';
    return `native ${functionName || '(anonymous: builtins such as JSON.stringify)'}`;
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1];
  const own = /\/dist\/((?:src|bench)\/[^/]+)/.exec(url);
  if (own) return own[1].replace(/\.js$/, '');
  if (url.startsWith('node:')) {
    const parts = url.slice(5).split('/');
    return `node ${parts[0] === 'internal' ? parts.slice(0, 2).join('/') : parts[0]}`;
  }
  return url;
}

function shortUrl(url: string): string {
  const nm = url.indexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + '/dist/'.length);
  return url.replace(/^file:\/\//, '');
}

export function summariseProfile(file: string, top = 25, window?: ProfileWindow): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; it is charged to the sample's node.
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (window !== undefined && (at < window.fromUs || at > window.toUs)) continue;
    const id = profile.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  }
  const functions = new Map<string, { name: string; where: string; us: number }>();
  const areas = new Map<string, number>();
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    totalUs += us;
    const where = url === '' ? '' : `${shortUrl(url)}:${lineNumber + 1}`;
    const key = `${functionName}@${where}`;
    const f = functions.get(key) ?? { name: functionName || '(anonymous)', where, us: 0 };
    f.us += us;
    functions.set(key, f);
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const pct = (us: number): number => (totalUs > 0 ? (100 * us) / totalUs : 0);
  return {
    file,
    totalMs: totalUs / 1000,
    windowed: window !== undefined,
    functions: [...functions.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, selfMs: f.us / 1000, pct: pct(f.us) })),
    areas: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([area, us]) => ({ area, selfMs: us / 1000, pct: pct(us) })),
  };
}

export function formatProfile(s: ProfileSummary): string {
  const span = s.windowed ? 'of the measured phase' : 'sampled';
  const lines = [`CPU profile ${s.file} (${(s.totalMs / 1000).toFixed(1)} s ${span})`, '  self time by area:'];
  for (const a of s.areas.slice(0, 15))
    lines.push(`    ${a.pct.toFixed(1).padStart(5)}%  ${(a.selfMs / 1000).toFixed(2).padStart(6)} s  ${a.area}`);
  lines.push('  top functions by self time:');
  for (const f of s.functions) lines.push(`    ${f.pct.toFixed(1).padStart(5)}%  ${f.name}  ${f.where}`);
  return lines.join('\n');
}

if (require.main === module) {
  for (const f of process.argv.slice(2)) process.stdout.write(`${formatProfile(summariseProfile(f, 30))}\n`);
}
