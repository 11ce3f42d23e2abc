// The property of the batch evaluator, at the entry point the pipeline calls (evaluateOrReject): for
// any encoded event, the plain byte path (src/wire/event-spans.ts, src/record/plain-record.ts) with its
// fallback never accepts what the reference way (protobufjs decoding, validateEvent, formatRecord)
// rejects, and never writes different bytes. Events are random: valid ones with realistic names,
// dates and UTF-8 (multibyte, characters JSON escapes), and mutated ones (truncated, bit-flipped,
// fields sent twice, unknown fields and groups, wrong wire types, bytes that are not UTF-8, fields at
// and past the limits, unknown actions). The same evaluators judge every batch, so that their caches carry
// over as in the sidecar; the rules change now and then.
//
// `make test` runs it for FUZZ_SECONDS (3 by default) from a fixed seed; `make fuzz` runs it for 300 s
// from FUZZ_SEED (the time by default). A failure prints the seed, the batch, and the first event that
// disagrees alone, in hex: enough to replay it and to paste it into a unit test.
import { expect } from 'chai';
import { defaultLimits } from '../../src/config/load';
import type { EventLimits } from '../../src/events/validate-event';
import { BatchEvaluator, type EvaluatedBatch } from '../../src/pipeline/evaluate-batch';
import { RecordDateFormatter } from '../../src/record/dates';
import { ACTIONS, type AccessAudit, type CompiledRules, compileRules } from '../../src/rules';
import { scanStreamRequest } from '../../src/wire/stream-request';
import { encode, type Part, referenceBatch, request } from '../support/reference-batch';

/** The seed `make test` runs from: fixed, so that a failure there fails again. */
const FIXED_SEED = 20261207;
const seconds = Number(process.env.FUZZ_SECONDS ?? 3);
const runSeed = process.env.FUZZ_SEED === undefined ? FIXED_SEED : Number(process.env.FUZZ_SEED) >>> 0;
const RECEIVED_MS = Date.UTC(2030, 0, 1, 12, 0, 0, 250);
/** meshaudit.limits' defaults, and the smallest it allows (src/config/load.ts). */
const DEFAULT_LIMITS: EventLimits = defaultLimits();
const SMALL_LIMITS: EventLimits = { fieldChars: 253, listEntries: 1 };
const dates = new RecordDateFormatter(() => 120);

/** mulberry32: a tiny seeded PRNG, enough to spread cases (no need for cryptographic quality). */
class Random {
  /** Set for an event of valid-looking values only (see value()): about half of them. */
  calm = false;
  /** The limits of the evaluator the next batch goes to: values are drawn at and past them. */
  limits: EventLimits = DEFAULT_LIMITS;

  constructor(private state: number) {}

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True once in `n` times. */
  oneIn(n: number): boolean {
    return this.int(n) === 0;
  }

  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)];
  }
}

// ---- valid-looking events ----

const NAMES = ['web', 'backend-v2', 'demo', 'default', 'm1', 'kuma.io/service', 'team-a', 'john@kuma.io', 'x', '~'];
const NON_ASCII = ['wé', '日本語', '😀', 'Ω-mesh', 'naïve', '\u00a0', '\u2028'];
/** Characters JSON escapes, and a lone surrogate (which UTF-8 cannot encode: protobufjs writes bytes that are not UTF-8). */
const ESCAPED = ['a"b', 'a\\b', 'line\nbreak', 'nul\u0000', 'del\u007f', 'tab\t', '\u001f', 'lone\ud800'];
/** Bytes that are not UTF-8: a bad lead, a cut sequence, an overlong encoding, a surrogate. */
const NOT_UTF8 = [[0xff], [0xc3, 0x28], [0xe2, 0x82], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0x61, 0x80]].map((b) =>
  Uint8Array.from(b),
);
const ALPHABET = ['a', 'Z', '0', '-', '.', '/', ' ', 'é', '日', '😀', '"', '\\'];
const DATES = [
  '2024-05-01T10:00:00Z',
  '2024-05-01T10:00:00.123456789+02:00',
  '2024-05-01T10:00:00.5-05:30',
  '1970-01-01T00:00:00Z',
  '2024-02-29T23:59:59Z',
  '2023-02-29T00:00:00Z',
  '2024-05-01t10:00:00z',
  '2024-05-01 10:00:00Z',
  '2024-05-01T10:00:00',
  '2024-05-01T24:00:00Z',
  '9999-12-31T23:59:60Z',
  'yesterday',
  '２０２４-05-01T10:00:00Z',
];
/** The dates above that are valid RFC 3339. */
const VALID_DATES = DATES.slice(0, 5);
const date = (r: Random): string => r.pick(r.calm ? VALID_DATES : DATES);
const UNKNOWN_ACTIONS = ['CREAT', 'create', 'GENERATE_USER_TOKEN ', 'DELETE\u0000', 'ÜPDATE'];
const TYPES = ['TrafficPermission', 'Mesh', 'DataplaneInsight', 'MeshTrafficPermission', 'Dataplane', 'NoSuchType'];

/** A string value: mostly plain, sometimes non-ASCII, escaped, not UTF-8, random, or at and past the limit. */
function value(r: Random, plain: readonly string[] = NAMES): string | Uint8Array {
  if (r.calm) return r.oneIn(8) ? r.pick(NON_ASCII) : r.oneIn(20) ? r.pick(ESCAPED.slice(0, 3)) : r.pick(plain);
  const roll = r.int(100);
  if (roll < 70) return r.pick(plain);
  if (roll < 78) return r.pick(NON_ASCII);
  if (roll < 85) return r.pick(ESCAPED);
  if (roll < 88) return r.pick(NOT_UTF8);
  if (roll < 90) return '';
  if (roll < 96) return Array.from({ length: 1 + r.int(12) }, () => r.pick(ALPHABET)).join('');
  // At and past fieldChars, in characters; a multibyte one is twice as long in bytes.
  const chars = r.limits.fieldChars + r.pick([-1, 0, 1]);
  return (r.oneIn(2) ? 'a' : 'é').repeat(chars);
}

/** A field the event may leave out (the reference then names it, or takes the default). */
function maybe(r: Random, parts: Part[], field: number, v: Part[1], absentOneIn = 15): void {
  if (!r.oneIn(absentOneIn)) parts.push([field, v]);
}

function list(r: Random, field: number, parts: Part[]): void {
  // Now and then at and past listEntries.
  const n = r.oneIn(40) ? r.limits.listEntries + r.pick([0, 1]) : r.int(4);
  for (let i = 0; i < n; i++) parts.push([field, value(r)]);
}

function resource(r: Random): Part[] {
  const parts: Part[] = [];
  maybe(r, parts, 1, value(r, TYPES));
  maybe(r, parts, 2, value(r));
  maybe(r, parts, 3, value(r), 4);
  return parts;
}

function token(r: Random): Part[] {
  const parts: Part[] = [];
  maybe(r, parts, 1, value(r));
  maybe(r, parts, 2, date(r), 3);
  if (!r.oneIn(8)) {
    const claims: Part[] = [];
    maybe(r, claims, 1, value(r), 3);
    const tags = r.oneIn(40) ? r.limits.listEntries + r.pick([0, 1]) : r.int(4);
    for (let i = 0; i < tags; i++) {
      const entry: Part[] = [];
      // A key sent twice across entries (the last wins), and entries without a key or a value.
      maybe(r, entry, 1, r.oneIn(4) ? 'k' : value(r), 10);
      maybe(r, entry, 2, value(r), 10);
      claims.push([2, entry]);
    }
    maybe(r, claims, 3, value(r), 3);
    list(r, 4, claims);
    maybe(r, claims, 5, value(r), 3);
    list(r, 6, claims);
    parts.push([3, shuffled(r, claims)]);
  }
  return parts;
}

/** An event as a control plane sends it, mostly valid; its fields in the usual order or shuffled. */
function event(r: Random): Part[] {
  r.calm = r.oneIn(2);
  const tokenEvent = r.oneIn(3);
  const parts: Part[] = [];
  maybe(r, parts, 1, value(r), 10);
  maybe(r, parts, 2, date(r), 3);
  const action = r.oneIn(r.calm ? 1000 : 15)
    ? r.pick(UNKNOWN_ACTIONS)
    : r.oneIn(10)
      ? r.pick(ACTIONS)
      : tokenEvent
        ? r.pick(['GENERATE_USER_TOKEN', 'GENERATE_DATAPLANE_TOKEN'])
        : r.pick(['CREATE', 'UPDATE', 'DELETE', 'VIEW_STATS']);
  maybe(r, parts, 3, action, 20);
  // Now and then both a resource and a token, or neither.
  if (!tokenEvent || r.oneIn(30)) maybe(r, parts, 4, resource(r), 30);
  if (tokenEvent || r.oneIn(30)) maybe(r, parts, 5, token(r), 30);
  const user: Part[] = [];
  maybe(r, user, 1, value(r), 20);
  list(r, 2, user);
  maybe(r, parts, 6, user, 30);
  // Unknown fields, and known ones with the wrong wire type, at any level.
  if (r.oneIn(15)) parts.push([7 + r.int(30), r.oneIn(2) ? { varint: r.int(1 << 30) } : value(r)]);
  if (r.oneIn(40)) parts.push([1 + r.int(6), { varint: r.int(300) }]);
  return r.oneIn(4) ? shuffled(r, parts) : parts;
}

function shuffled<T>(r: Random, items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

// ---- mutations of the encoded bytes ----

/** A group (wire types 3 and 4), which protobufjs skips and the scanner does not read. */
const GROUP = Uint8Array.from([(9 << 3) | 3, 0x08, 0x01, (9 << 3) | 4]);

function mutated(r: Random, bytes: Uint8Array, other: Uint8Array): Uint8Array {
  switch (r.int(7)) {
    case 0: // truncated
      return bytes.subarray(0, r.int(bytes.length + 1));
    case 1: {
      // one to three bits flipped
      const out = Uint8Array.from(bytes);
      for (let n = 1 + r.int(3); n > 0 && out.length > 0; n--) out[r.int(out.length)] ^= 1 << r.int(8);
      return out;
    }
    case 2: // the event twice (protobuf merges: strings last, messages merged, lists joined)
      return concat(bytes, bytes);
    case 3: // another event's fields after its own
      return concat(bytes, other);
    case 4: // a group
      return concat(bytes, GROUP);
    case 5: {
      // a byte changed at random
      const out = Uint8Array.from(bytes);
      if (out.length > 0) out[r.int(out.length)] = r.int(256);
      return out;
    }
    default: // bytes appended at random
      return concat(
        bytes,
        Uint8Array.from({ length: 1 + r.int(6) }, () => r.int(256)),
      );
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

// ---- rules ----

const all: AccessAudit = { name: 'all', rules: [{ types: [], mesh: '', access: [], accessAll: true }] };
const RULE_SETS: CompiledRules[] = [
  compileRules([all], ['DataplaneInsight']),
  compileRules([all], []),
  compileRules(
    [
      {
        name: 'changes',
        rules: [{ types: ['TrafficPermission', 'Mesh'], mesh: 'demo', access: ['CREATE', 'DELETE'], accessAll: false }],
      },
      { name: 'views', rules: [{ types: [], mesh: '', access: ['VIEW_STATS'], accessAll: false }] },
      { name: 'tokens', rules: [{ types: [], mesh: 'm1', access: ['GENERATE_USER_TOKEN'], accessAll: false }] },
      { name: 'non-ascii', rules: [{ types: [], mesh: 'wé', access: [], accessAll: true }] },
    ],
    ['DataplaneInsight'],
  ),
  compileRules([], []),
];

// ---- the property ----

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

function compare(got: EvaluatedBatch, want: EvaluatedBatch): string | undefined {
  if (got.failure !== undefined) return `the evaluator threw: ${got.failure}`;
  const gotRejected = new Set(got.rejected.map((r) => r.index));
  const accepted = want.rejected.filter((r) => !gotRejected.has(r.index));
  if (accepted.length > 0) return `accepted what the reference rejects: ${JSON.stringify(accepted)}`;
  if (!got.data.equals(want.data)) {
    // The first line that differs: a batch's records can be many.
    const gotLines = got.data.toString().split('\n');
    const wantLines = want.data.toString().split('\n');
    const at = gotLines.findIndex((line, i) => line !== wantLines[i]);
    return `wrote different bytes, from record ${at}:\n  got:  ${JSON.stringify(gotLines[at])}\n  want: ${JSON.stringify(wantLines[at])}`;
  }
  const counts = (b: EvaluatedBatch): unknown => ({ recorded: b.recorded, skipped: b.skipped, rejected: b.rejected });
  if (JSON.stringify(counts(got)) !== JSON.stringify(counts(want))) {
    return `different outcome:\n  got:  ${JSON.stringify(counts(got))}\n  want: ${JSON.stringify(counts(want))}`;
  }
  return undefined;
}

function evaluate(evaluator: BatchEvaluator, bytes: Buffer): EvaluatedBatch {
  return evaluator.evaluateOrReject({
    bytes,
    from: 0,
    receivedMs: RECEIVED_MS,
    eventCount: scanStreamRequest(bytes).eventCount,
  });
}

/** The first event of a failed batch that disagrees on its own, with a fresh evaluator. */
function culprit(events: readonly Uint8Array[], rules: CompiledRules, limits: EventLimits): string {
  for (const e of events) {
    const bytes = request([e]);
    const problem = compare(
      evaluate(new BatchEvaluator(rules, dates, limits), bytes),
      referenceBatch(bytes, rules, RECEIVED_MS, dates, limits),
    );
    if (problem !== undefined) return `the event that disagrees alone (hex): ${hex(e)}\n${problem}`;
  }
  return 'no event disagrees alone: the evaluator state carried from earlier batches matters (replay the seed)';
}

describe('batch evaluation: the plain byte path against the reference', () => {
  it(`never accepts what the reference rejects and never writes other bytes (seed ${runSeed}, ${seconds} s)`, function () {
    this.timeout((seconds + 60) * 1000);
    const r = new Random(runSeed);
    // One evaluator per set of limits, each judging its share of the batches.
    const evaluators = [DEFAULT_LIMITS, SMALL_LIMITS].map((limits) => new BatchEvaluator(RULE_SETS[0], dates, limits));
    let rules = RULE_SETS[0];
    const totals = { batches: 0, events: 0, recorded: 0, skipped: 0, rejected: 0 };
    const deadline = Date.now() + seconds * 1000;
    while (Date.now() < deadline || totals.batches < 200) {
      if (r.oneIn(50)) {
        rules = r.pick(RULE_SETS);
        for (const e of evaluators) e.setRules(rules);
      }
      const evaluator = r.oneIn(3) ? evaluators[1] : evaluators[0];
      r.limits = evaluator.limits;
      const events: Uint8Array[] = [];
      const n = r.oneIn(20) ? 100 + r.int(100) : 1 + r.int(12);
      let previous: Uint8Array = new Uint8Array(0);
      for (let i = 0; i < n; i++) {
        let e = encode(event(r));
        if (r.oneIn(5)) e = mutated(r, e, previous);
        events.push(e);
        previous = e;
      }
      const bytes = request(events);
      const want = referenceBatch(bytes, rules, RECEIVED_MS, dates, evaluator.limits);
      const problem = compare(evaluate(evaluator, bytes), want);
      if (problem !== undefined) {
        expect.fail(
          `batch ${totals.batches} of the run from seed ${runSeed} disagrees with the reference: ${problem}\n` +
            `limits ${JSON.stringify(evaluator.limits)}; ${culprit(events, rules, evaluator.limits)}\n` +
            `replay: FUZZ_SEED=${runSeed} make fuzz (or FUZZ_SEED=${runSeed} FUZZ_SECONDS=${seconds} npx mocha dist/test/pipeline/evaluate-batch.test.js)`,
        );
      }
      totals.batches++;
      totals.events += n;
      totals.recorded += want.recorded;
      totals.skipped += want.skipped;
      totals.rejected += want.rejected.length;
    }
    if (process.env.FUZZ_SECONDS !== undefined) console.log(`    fuzz: seed ${runSeed}: ${JSON.stringify(totals)}`);
    // The generator reaches every outcome, often: a property over one kind of event would prove little.
    for (const outcome of ['recorded', 'skipped', 'rejected'] as const) {
      expect(totals[outcome], outcome).to.be.greaterThan(totals.events / 20);
    }
  });
});

describe('BatchEvaluator.setLimits (a config reload)', () => {
  const ALL = compileRules([{ name: 'all', rules: [{ types: [], mesh: '', access: [], accessAll: true }] }], []);
  /** A resource event whose user has `groups` and a name of `nameChars` characters. */
  const event = (nameChars: number, groups: number): Uint8Array =>
    encode([
      [1, 'e-1'],
      [2, '2024-05-01T10:00:00Z'],
      [3, 'UPDATE'],
      [
        4,
        [
          [1, 'Mesh'],
          [2, 'n'.repeat(nameChars)],
        ],
      ],
      [6, [[1, 'john'], ...Array.from({ length: groups }, (_, i): Part => [2, `g${i}`])]],
    ]);

  it('judges the next batch by the new fieldChars and listEntries, both ways, as the reference does', () => {
    const evaluator = new BatchEvaluator(ALL, dates, DEFAULT_LIMITS);
    const batch = request([event(300, 1), event(10, 2), event(10, 1)]);
    const outcome = (limits: EventLimits): Array<number | string> => {
      const got = evaluate(evaluator, batch);
      const problem = compare(got, referenceBatch(batch, ALL, RECEIVED_MS, dates, limits));
      expect(problem, problem).to.equal(undefined);
      return [got.recorded, ...got.rejected.map((r) => r.index)];
    };
    expect(outcome(DEFAULT_LIMITS)).to.deep.equal([3]);
    evaluator.setLimits(SMALL_LIMITS);
    expect(evaluator.limits).to.deep.equal(SMALL_LIMITS);
    expect(outcome(SMALL_LIMITS)).to.deep.equal([1, 0, 1]);
    evaluator.setLimits(DEFAULT_LIMITS);
    expect(outcome(DEFAULT_LIMITS)).to.deep.equal([3]);
  });
});
