// The exactly-once check of a finished scenario: every acknowledged event is in the audit files
// (active and rotated) exactly once; events sent but not acknowledged (written during the drain)
// at most once; the records of the rules files' own AccessAudits, which the sidecar writes when it
// seeds them; the records of the AccessAudit changes made through RuleService (the soak's), answered
// ones exactly once and failed ones at most once; nothing else. Events are found by the keys their
// records carry (events.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { COMPRESSED_SUFFIX, rotatedFromName } from '../src/backends/file/rotation-names';
import { RECORD_KEY } from './events';

export interface CheckInput {
  /** Per stream: last sequence acknowledged (cumulative) and last sequence sent. */
  acked: readonly number[];
  sent: readonly number[];
  /** Per stream: sequences whose call failed (unary): at most once, like unacknowledged ones. */
  unsure?: ReadonlyArray<readonly number[] | undefined>;
  /**
   * AccessAudit changes made through RuleService, each as `ACTION name` (`CREATE soak-rule-3`): the
   * answered ones exactly once, the failed ones (the sidecar was killed during the call) at most once.
   */
  apiChanges?: { answered: readonly string[]; failed: readonly string[] };
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
  /** Records of AccessAudit changes made through RuleService (apiChanges): counted apart from events. */
  apiChanges: number;
  /** Files that do not end with a newline. */
  tornFiles: number;
  /** A few examples, for the report. */
  examples: string[];
}

/** A record of an AccessAudit change by the rules files' user (src/server/rule-service.ts). */
const RULES_FILES_CHANGE = /"type":"AccessAudit"\},"user":\{"name":"meshaudit:rules-files"/g;
/**
 * A record of an AccessAudit change through RuleService, by its caller (src/server/authn.ts; the soak
 * calls over loopback, as the admin): action, name. Any user but the rules files'.
 */
const API_CHANGE =
  /"action":"([A-Z]+)","resource":\{"name":"([^"]+)","type":"AccessAudit"\},"user":\{"name":"(?!meshaudit:rules-files")[^"]*"/g;

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
    apiChanges: 0,
    tornFiles: 0,
    examples: [],
  };
  const example = (text: string): void => {
    if (res.examples.length < 5) res.examples.push(text);
  };
  const apiCounts = new Map<string, number>();
  // The audit files alone: the integrity trail's digests, markers and seals beside them hold no record.
  const files = backendFiles(dir, 'audit.log');
  for (const file of files) {
    const f = path.basename(file);
    // Records are ASCII here; latin1 reads a 64 MiB file without UTF-8 decoding.
    const text = readAuditFile(file).toString('latin1');
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
    for (const m of text.matchAll(API_CHANGE)) {
      const key = `${m[1]} ${m[2]}`;
      apiCounts.set(key, (apiCounts.get(key) ?? 0) + 1);
      res.apiChanges++;
      keys++;
    }
    if (keys !== lines) {
      res.unexpected += Math.abs(lines - keys);
      example(`${f}: ${lines} lines but ${keys} recognised records`);
    }
  }
  counts.forEach((c, stream) => {
    const unsure = new Set(input.unsure?.[stream] ?? []);
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
  checkApiChanges(apiCounts, input.apiChanges ?? { answered: [], failed: [] }, res, example);
  res.ok = res.missing === 0 && res.duplicated === 0 && res.unexpected === 0 && res.tornFiles === 0;
  return res;
}

/** Answered changes exactly once, failed ones at most once, no record of a change never made. */
function checkApiChanges(
  counts: ReadonlyMap<string, number>,
  expected: { answered: readonly string[]; failed: readonly string[] },
  res: CheckResult,
  example: (text: string) => void,
): void {
  const failed = new Set(expected.failed);
  const answered = new Set(expected.answered);
  for (const key of expected.answered) {
    const n = counts.get(key) ?? 0;
    if (n === 0) {
      res.missing++;
      example(`AccessAudit change ${key}: answered, no record`);
    }
  }
  for (const [key, n] of counts) {
    if (n > 1) {
      res.duplicated++;
      example(`AccessAudit change ${key}: ${n} records`);
    } else if (!failed.has(key) && !answered.has(key)) {
      res.unexpected++;
      example(`AccessAudit change ${key}: recorded, never made`);
    }
  }
}

export interface TailResult {
  ok: boolean;
  /** Rotated files the tight backend keeps (with records; empty ones apart), and the most it may keep. */
  rotatedKept: number;
  emptyRotated: number;
  maxRetainedFiles: number;
  /** Bytes in the tight backend's files. */
  bytes: number;
  examples: string[];
}

/**
 * The files of a backend, oldest first: its rotated files by the time in their names (compressed ones,
 * rotation.compress, included: a file and its .gz both there would be counted twice, as they should),
 * then the active file. readAuditFile reads them.
 */
export function backendFiles(dir: string, activeBase: string): string[] {
  const names = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  const rotated = names
    .map((name) => ({ name, time: rotatedFromName(activeBase, name)?.time }))
    .filter((f): f is { name: string; time: Date } => f.time !== undefined)
    .sort((a, b) => a.time.getTime() - b.time.getTime())
    .map((f) => f.name);
  return [...rotated, ...(names.includes(activeBase) ? [activeBase] : [])].map((n) => path.join(dir, n));
}

/** The records an audit file holds: a compressed one (`.gz`) gunzipped. */
export function readAuditFile(file: string): Buffer {
  const bytes = fs.readFileSync(file);
  return file.endsWith(COMPRESSED_SUFFIX) ? zlib.gunzipSync(bytes) : bytes;
}

/**
 * Retention, checked against a backend that keeps every file. Both get the same records in the same
 * order, so the tight backend's files, oldest first, must be byte for byte the end of the full
 * backend's, from a record boundary (nothing retention should keep was lost, no record doubled), and
 * it must keep exactly `maxRetainedFiles` rotated files once it has rotated that often (none deleted
 * that it should keep, none left that it should delete).
 */
export function checkRetainedTail(
  fullDir: string,
  tightDir: string,
  maxRetainedFiles: number,
  activeBase = 'audit.log',
): TailResult {
  const tightFiles = backendFiles(tightDir, activeBase);
  const rotated = tightFiles.filter((f) => path.basename(f) !== activeBase).map((f) => fs.statSync(f).size);
  const res: TailResult = {
    ok: false,
    rotatedKept: rotated.filter((size) => size > 0).length,
    emptyRotated: rotated.filter((size) => size === 0).length,
    maxRetainedFiles,
    bytes: 0,
    examples: [],
  };
  const tight = Buffer.concat(tightFiles.map(readAuditFile));
  res.bytes = tight.length;
  // The full backend's last tight.length + 1 bytes (the one before must end a record), newest file first.
  const fullFiles = backendFiles(fullDir, activeBase);
  const parts: Buffer[] = [];
  let have = 0;
  for (let i = fullFiles.length - 1; i >= 0 && have <= tight.length; i--) {
    const b = readAuditFile(fullFiles[i]);
    parts.unshift(b);
    have += b.length;
  }
  const fullTail = Buffer.concat(parts);
  const wholeFull = have <= tight.length;
  const start = fullTail.length - tight.length;
  if (start < 0) res.examples.push(`the tight backend has ${tight.length} bytes, the full one only ${fullTail.length}`);
  else if (!fullTail.subarray(start).equals(tight))
    res.examples.push(`the tight backend's ${tight.length} bytes are not the end of the full backend's`);
  else if (start > 0 && fullTail[start - 1] !== 0x0a)
    res.examples.push("the tight backend's oldest file does not start at a record of the full backend");
  if (res.rotatedKept > maxRetainedFiles)
    res.examples.push(`${res.rotatedKept} rotated files kept, more than maxRetainedFiles ${maxRetainedFiles}`);
  else if (res.rotatedKept < maxRetainedFiles && !wholeFull)
    res.examples.push(`${res.rotatedKept} rotated files kept, fewer than maxRetainedFiles ${maxRetainedFiles}`);
  res.ok = res.examples.length === 0;
  return res;
}
