// Rounds: the scenarios that targets compare with each other run several times, one after the other,
// and each comparison is the median of the ratios taken round by round. This machine's speed drifts
// by a third within minutes; two scenarios measured seconds apart drift together, so a ratio of one
// round is fairer than a ratio of results minutes apart, and the median of three drops one odd round.
import type { ScenarioResult } from './report';

/** Most rounds BENCH_ROUNDS may ask for: each adds about a minute. */
export const MAX_ROUNDS = 9;

/** BENCH_ROUNDS: an integer from 1 to MAX_ROUNDS; unset or empty, `fallback`. Throws a message otherwise. */
export function parseRounds(text: string | undefined, fallback: number): number {
  if (text === undefined || text.trim() === '') return fallback;
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1 || Number(text) > MAX_ROUNDS) {
    throw new Error(`BENCH_ROUNDS must be a whole number from 1 to ${MAX_ROUNDS}, got "${text}"`);
  }
  return Number(text);
}

/**
 * The middle value; for an even count the lower of the two middle ones (a target is then judged on
 * the less favourable of them); null for none.
 */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/** A round that must fail the run: it errored, measured nothing, or broke the exactly-once check. */
export function roundFailed(r: ScenarioResult): boolean {
  return r.eventsPerSec === null || r.errors.length > 0 || (r.check !== null && !r.check.ok);
}

/**
 * The round that stands for a scenario in the table: a failed one if any (an error or a failed
 * exactly-once check must show), otherwise the round of median throughput, so that every column of
 * its row comes from one real measurement.
 */
export function representative(rounds: readonly ScenarioResult[]): ScenarioResult {
  const failed = rounds.find(roundFailed);
  if (failed !== undefined) return failed;
  const mid = median(rounds.map((r) => r.eventsPerSec!));
  return rounds.find((r) => r.eventsPerSec === mid)!;
}

/**
 * `a`'s throughput over `b`'s: the median of the ratios of the rounds both ran, round by round (a
 * scenario that runs once, like the floor, is compared with the other's first round, the one that ran
 * nearest to it). No ratio when a side did not run or one of those rounds failed.
 */
export function roundRatio(
  a: readonly ScenarioResult[] | undefined,
  b: readonly ScenarioResult[] | undefined,
): { ratio: number | null; perRound: number[] } {
  if (a === undefined || b === undefined) return { ratio: null, perRound: [] };
  const rate = (r: ScenarioResult): number | null =>
    r.eventsPerSec !== null && r.eventsPerSec > 0 ? r.eventsPerSec : null;
  const perRound: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = rate(a[i]);
    const y = rate(b[i]);
    if (x === null || y === null) return { ratio: null, perRound: [] };
    perRound.push(x / y);
  }
  return { ratio: median(perRound), perRound };
}

/**
 * The median over rounds of a's server CPU per 100k events divided by b's, round by round (alternating
 * runs: a machine that drifts drifts for both).
 */
export function cpuRatio(
  a: readonly ScenarioResult[] | undefined,
  b: readonly ScenarioResult[] | undefined,
): { ratio: number | null; perRound: number[] } {
  if (a === undefined || b === undefined) return { ratio: null, perRound: [] };
  const cpu = (r: ScenarioResult): number | null =>
    r.serverCpuPer100k !== null && r.serverCpuPer100k > 0 ? r.serverCpuPer100k : null;
  const perRound: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = cpu(a[i]);
    const y = cpu(b[i]);
    if (x === null || y === null) return { ratio: null, perRound: [] };
    perRound.push(x / y);
  }
  return { ratio: median(perRound), perRound };
}

/**
 * One row for a scenario's rounds: the representative round, with a note listing every round's
 * events/s, and every round's errors and failed exactly-once check (so that any of them fails the run,
 * whichever round is shown).
 */
export function combineRounds(runs: readonly ScenarioResult[]): ScenarioResult {
  const shown = representative(runs);
  if (runs.length === 1) return shown;
  const r: ScenarioResult = { ...shown, errors: [...shown.errors], notes: [...shown.notes] };
  const rates = runs.map((x) =>
    x.eventsPerSec === null ? 'ERROR' : `${Math.round(x.eventsPerSec).toLocaleString('en-US')}/s`,
  );
  r.notes.unshift(
    `${runs.length} rounds: ${rates.join(', ')}; the columns are from ${roundFailed(shown) ? 'the failed one' : 'the median one'} (x floor and x naive: medians of round-by-round ratios)`,
  );
  for (const x of runs) if (x !== shown) r.errors.push(...x.errors.map((e) => `another round: ${e}`));
  const failedCheck = runs.find((x) => x.check !== null && !x.check.ok);
  if (failedCheck !== undefined) r.check = failedCheck.check;
  return r;
}
