// The soak's pure decisions (bench/soak.ts runs them): when the sidecar is killed, and whether its
// memory grew. Unit-tested in test/bench/soak-plan.test.ts.

/** Memory is compared over windows of this length: the "first and last minute". */
export const MEMORY_WINDOW_S = 60;
/**
 * The first window starts this long after the process started: start-up, and the catch-up of what the
 * control planes queued while it was down, are not the steady state whose growth is asked about.
 */
export const MEMORY_SETTLE_S = 10;
/**
 * Growth allowed between the two windows: the larger of these. The medians of the windows are compared
 * (RSS saws up and down by a few MiB with every scavenge and with rotations); what stays above both
 * after minutes is growth.
 */
export const MEMORY_TOLERANCE_MB = 16;
export const MEMORY_TOLERANCE_FRACTION = 0.1;
/** The last process lives at least this long (when the run allows it): its first and last minute are apart. */
const LAST_LIFE_S = 240;
/** Kills before the last process, about this far apart. */
const KILL_INTERVAL_S = 120;

/**
 * When to SIGKILL the sidecar, in seconds after the soak started: evenly over the first part of the
 * run, so that the last process lives the second half of it (at least LAST_LIFE_S when the run is long
 * enough, at most 80% of it). At least one kill. The default 600 s: at 100, 200 and 300 s.
 */
export function killTimesS(soakSeconds: number): number[] {
  const lastLifeS = Math.max(soakSeconds / 2, Math.min(LAST_LIFE_S, soakSeconds * 0.8));
  const beforeS = soakSeconds - lastLifeS;
  const kills = Math.max(1, Math.round(beforeS / KILL_INTERVAL_S));
  return Array.from({ length: kills }, (_, i) => Math.round((beforeS * (i + 1)) / kills));
}

export interface RssSample {
  /** Seconds since the process started. */
  atS: number;
  rssMb: number;
}

export interface MemoryJudgement {
  /** Medians of the first and last window, MiB; NaN when a window has no sample. */
  firstMb: number;
  lastMb: number;
  growthMb: number;
  toleranceMb: number;
  /** The windows actually used (shorter than a minute when the process lived less than ~2 minutes). */
  firstWindowS: [number, number];
  lastWindowS: [number, number];
  ok: boolean;
}

/** The middle value (the lower middle one for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/**
 * Did the RSS of a process that lived `lifeS` seconds grow from its first window (after
 * MEMORY_SETTLE_S) to its last? The windows are a minute, or a third of what the process lived after
 * settling when that is shorter, so that they never overlap. Not ok when a window has no sample.
 */
export function judgeMemory(samples: readonly RssSample[], lifeS: number): MemoryJudgement {
  const windowS = Math.min(MEMORY_WINDOW_S, (lifeS - MEMORY_SETTLE_S) / 3);
  const first: [number, number] = [MEMORY_SETTLE_S, MEMORY_SETTLE_S + windowS];
  const last: [number, number] = [lifeS - windowS, lifeS];
  const inWindow = ([from, to]: [number, number]): number[] =>
    samples.filter((s) => s.atS >= from && s.atS <= to).map((s) => s.rssMb);
  const firstMb = median(inWindow(first));
  const lastMb = median(inWindow(last));
  const toleranceMb = Math.max(MEMORY_TOLERANCE_MB, firstMb * MEMORY_TOLERANCE_FRACTION);
  const growthMb = lastMb - firstMb;
  return {
    firstMb,
    lastMb,
    growthMb,
    toleranceMb,
    firstWindowS: first,
    lastWindowS: last,
    ok: windowS > 0 && growthMb <= toleranceMb,
  };
}
