// What the orchestrator reads about a process from /proc (Linux): CPU time and peak resident memory.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (100 on every common Linux). */
const CLOCK_TICKS_PER_SECOND = ((): number => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of every thread of `pid`, in ms; NaN when the process is gone. */
export function cpuMs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ")".
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

/** VmHWM: the peak resident set size of `pid` since it started, in MiB; NaN when unknown. */
export function peakRssMb(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * CPU time every process of the machine spent running (user, nice, system), in ms, from /proc/stat.
 * Minus what the benchmark's own processes used, it shows whether something else (another build, a
 * test run) shared the cores during a measurement. NaN when unknown.
 */
export function machineBusyMs(): number {
  try {
    const first = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const [user, nice, system] = first.trim().split(/\s+/).slice(1, 4).map(Number);
    return ((user + nice + system) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

export interface ProcessCpu {
  name: string;
  cpuMs: number;
}

/** CPU so far of every process on the machine (kernel threads included), by pid. */
export function processCpuSnapshot(): Map<number, ProcessCpu> {
  const out = new Map<number, ProcessCpu>();
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const p of pids) {
    const pid = Number(p);
    const ms = cpuMs(pid);
    if (Number.isNaN(ms)) continue;
    out.set(pid, { name: processName(pid), cpuMs: ms });
  }
  return out;
}

/** `comm`, and for node the script it runs (`node mocha`), so that a concurrent test run is recognisable. */
function processName(pid: number): string {
  try {
    const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    if (comm !== 'node' && comm !== 'MainThread') return comm;
    const args = fs
      .readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((a) => a !== '');
    const script = args.slice(1).find((a) => !a.startsWith('-'));
    return script ? `node ${script.split('/').slice(-2).join('/')}` : 'node';
  } catch {
    return '?';
  }
}

/**
 * The processes (other than `exclude`) that used CPU between two snapshots, largest first, and their
 * total. Processes that started and ended between the snapshots are not seen.
 */
export function othersBetween(
  before: Map<number, ProcessCpu>,
  after: Map<number, ProcessCpu>,
  exclude: ReadonlySet<number>,
): { top: ProcessCpu[]; totalMs: number } {
  const used: ProcessCpu[] = [];
  let totalMs = 0;
  for (const [pid, a] of after) {
    if (exclude.has(pid)) continue;
    const ms = a.cpuMs - (before.get(pid)?.cpuMs ?? 0);
    if (ms <= 0) continue;
    used.push({ name: a.name, cpuMs: ms });
    totalMs += ms;
  }
  return { top: used.sort((x, y) => y.cpuMs - x.cpuMs).slice(0, 3), totalMs };
}
