// The exactly-once check of a finished scenario: every acknowledged event is in the audit files
// (active and rotated) exactly once; events sent but not acknowledged (written during the drain)
// at most once; and the records of the rules files' own AccessAudits, which the sidecar writes when it
// seeds them; nothing else. Events are found by the keys their records carry (events.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RECORD_KEY } from './events';

export interface CheckInput {
  /** Per stream: last sequence acknowledged (cumulative) and last sequence sent. */
  acked: readonly number[];
  sent: readonly number[];
  /** Sequences whose call failed (unary): at most once, like unacknowledged ones. */
  unsure?: readonly number[];
}

export interface CheckResult {
  ok: boolean;
  files: number;
  lines: number;
  /** Acknowledged events with no record. */
  missing: number;
  /** Events with more than one record. */
  duplicated: number;
  /** Records of events never sent, or lines the check does not recognise. */
  unexpected: number;
  /** Records of the AccessAudit changes the --rules files made (at start-up): expected, not counted as events. */
  ruleChanges: number;
  /** Files that do not end with a newline. */
  tornFiles: number;
  /** A few examples, for the report. */
  examples: string[];
}

/** A record of an AccessAudit change by the rules files' user (src/server/rule-service.ts). */
const RULES_FILES_CHANGE = /"type":"AccessAudit"\},"user":\{"name":"meshaudit:rules-files"/g;

export function checkExactlyOnce(dir: string, input: CheckInput): CheckResult {
  const counts = input.sent.map((n) => new Uint8Array(n + 1));
  const res: CheckResult = {
    ok: false,
    files: 0,
    lines: 0,
    missing: 0,
    duplicated: 0,
    unexpected: 0,
    ruleChanges: 0,
    tornFiles: 0,
    examples: [],
  };
  const example = (text: string): void => {
    if (res.examples.length < 5) res.examples.push(text);
  };
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => fs.statSync(path.join(dir, f)).isFile()) : [];
  for (const f of files) {
    // Records are ASCII here; latin1 reads a 64 MiB file without UTF-8 decoding.
    const text = fs.readFileSync(path.join(dir, f), 'latin1');
    res.files++;
    if (text.length > 0 && !text.endsWith('\n')) {
      res.tornFiles++;
      example(`${f} ends with a torn line`);
    }
    let lines = 0;
    for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n', at + 1)) lines++;
    res.lines += lines;
    let keys = 0;
    const re = new RegExp(RECORD_KEY.source, 'g');
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      keys++;
      const stream = Number(m[1]);
      const seq = Number(m[2]);
      const c = counts[stream];
      if (c === undefined || seq < 1 || seq >= c.length) {
        res.unexpected++;
        example(`${f}: record of an event never sent: stream ${stream} seq ${seq}`);
        continue;
      }
      if (c[seq] < 255) c[seq]++;
    }
    const changes = text.match(RULES_FILES_CHANGE)?.length ?? 0;
    res.ruleChanges += changes;
    keys += changes;
    if (keys !== lines) {
      res.unexpected += Math.abs(lines - keys);
      example(`${f}: ${lines} lines but ${keys} recognised records`);
    }
  }
  const unsure = new Set(input.unsure ?? []);
  counts.forEach((c, stream) => {
    for (let seq = 1; seq < c.length; seq++) {
      const mustBeThere = seq <= input.acked[stream] && !unsure.has(seq);
      if (c[seq] > 1) {
        res.duplicated++;
        example(`stream ${stream} seq ${seq}: ${c[seq]} records`);
      } else if (c[seq] === 0 && mustBeThere) {
        res.missing++;
        example(`stream ${stream} seq ${seq}: acknowledged, no record`);
      }
    }
  });
  res.ok = res.missing === 0 && res.duplicated === 0 && res.unexpected === 0 && res.tornFiles === 0;
  return res;
}
