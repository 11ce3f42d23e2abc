// The plain way of evaluating events (src/pipeline/plain-record.ts) must give exactly what the
// reference way gives: protobufjs decoding, validateEvent, the rules, formatRecord. These tests build
// events byte by byte (so that they can also be malformed, repeat fields, or carry bytes that are not
// UTF-8), evaluate each alone and in batches, and compare with the reference, record bytes and
// rejection reasons alike. They also check that the plain way is really taken for ordinary events.
import { expect } from 'chai';
import { BatchEvaluator, type EvaluatedBatch } from '../../src/pipeline/evaluate-batch';
import { RecordDateFormatter } from '../../src/record/dates';
import { compileRules, type AccessAudit, type CompiledRules } from '../../src/rules';
import { scanStreamRequest } from '../../src/wire/stream-request';
import { encode, type Part, referenceBatch, request } from '../support/reference-batch';
import { defaultLimits } from '../../src/config/load';
import { AsciiCache } from '../../src/record/ascii-cache';
import {
  FALLBACK,
  RECORDED,
  RecordBuffer,
  SKIPPED,
  newPlainContext,
  writePlainRecord,
} from '../../src/record/plain-record';

const RECEIVED_MS = Date.UTC(2030, 0, 1, 12, 0, 0, 250);
const dates = new RecordDateFormatter(() => 120);

/** What the reference way gives for a request, at this file's time of receipt and date format. */
const reference = (bytes: Buffer, rules: CompiledRules): EvaluatedBatch =>
  referenceBatch(bytes, rules, RECEIVED_MS, dates, defaultLimits());

function evaluate(bytes: Buffer, rules: CompiledRules): EvaluatedBatch {
  return new BatchEvaluator(rules, dates, defaultLimits()).evaluate({
    bytes,
    from: 0,
    receivedMs: RECEIVED_MS,
    eventCount: scanStreamRequest(bytes).eventCount,
  });
}

function plain(event: Uint8Array, rules: CompiledRules): number {
  const buf = Buffer.from(event);
  const ctx = newPlainContext(dates, defaultLimits(), new AsciiCache());
  return writePlainRecord(buf, 0, buf.length, RECEIVED_MS, rules, ctx, new RecordBuffer(16));
}

function same(events: Uint8Array[], rules: CompiledRules): void {
  const bytes = request(events);
  const got = evaluate(bytes, rules);
  const want = reference(bytes, rules);
  expect(got.data.toString('latin1')).to.equal(want.data.toString('latin1'));
  expect({ ...got, data: undefined }).to.deep.equal({ ...want, data: undefined });
}

const ALL = compileRules(
  [{ name: 'all', rules: [{ types: [], mesh: '', access: [], accessAll: true }] }],
  ['DataplaneInsight'],
);
const SOME: AccessAudit[] = [
  {
    name: 'changes',
    rules: [{ types: ['TrafficPermission', 'Mesh'], mesh: 'demo', access: ['CREATE', 'DELETE'], accessAll: false }],
  },
  { name: 'views', rules: [{ types: [], mesh: '', access: ['VIEW_STATS'], accessAll: false }] },
  { name: 'mesh-own', rules: [{ types: [], mesh: 'm1', access: ['UPDATE'], accessAll: false }] },
  // Not a mesh name validation lets through, but the plain way must not depend on that.
  { name: 'non-ascii', rules: [{ types: [], mesh: 'wé', access: [], accessAll: true }] },
];
const SOME_RULES = compileRules(SOME, ['DataplaneInsight']);
const NONE = compileRules([], []);

function resourceEvent(
  over: {
    id?: string;
    date?: string;
    action?: string;
    type?: string;
    name?: string;
    mesh?: string;
    user?: string;
    groups?: string[];
  } = {},
): Part[] {
  const o = {
    id: 'e-1',
    date: '2024-05-01T10:00:00Z',
    action: 'UPDATE',
    type: 'TrafficPermission',
    name: 'web',
    mesh: 'demo',
    user: 'john@kuma.io',
    groups: ['team-a'],
    ...over,
  };
  const parts: Part[] = [];
  if (o.id !== '') parts.push([1, o.id]);
  if (o.date !== '') parts.push([2, o.date]);
  if (o.action !== '') parts.push([3, o.action]);
  const resource: Part[] = [];
  if (o.type !== '') resource.push([1, o.type]);
  if (o.name !== '') resource.push([2, o.name]);
  if (o.mesh !== '') resource.push([3, o.mesh]);
  parts.push([4, resource]);
  parts.push([6, [...(o.user === '' ? [] : [[1, o.user] as Part]), ...o.groups.map((g) => [2, g] as Part)]]);
  return parts;
}

interface TokenSpec {
  action?: string;
  id?: string;
  expiresAt?: string;
  mesh?: string;
  tags?: Array<[string, string]>;
  name?: string;
  claimsGroups?: string[];
  zone?: string;
  scope?: string[];
  claims?: boolean;
}

function tokenEvent(over: TokenSpec = {}): Part[] {
  const o = {
    action: 'GENERATE_DATAPLANE_TOKEN',
    id: 'tok-1',
    expiresAt: '2024-05-02T10:00:00Z',
    mesh: 'demo',
    tags: [
      ['kuma.io/service', 'backend'],
      ['version', 'v1'],
    ] as Array<[string, string]>,
    name: '',
    claimsGroups: [] as string[],
    zone: '',
    scope: [] as string[],
    claims: true,
    ...over,
  };
  const claims: Part[] = [];
  if (o.mesh !== '') claims.push([1, o.mesh]);
  for (const [k, v] of o.tags)
    claims.push([2, [...(k === '' ? [] : [[1, k] as Part]), ...(v === '' ? [] : [[2, v] as Part])]]);
  if (o.name !== '') claims.push([3, o.name]);
  for (const g of o.claimsGroups) claims.push([4, g]);
  if (o.zone !== '') claims.push([5, o.zone]);
  for (const sc of o.scope) claims.push([6, sc]);
  const token: Part[] = [[1, o.id]];
  if (o.expiresAt !== '') token.push([2, o.expiresAt]);
  if (o.claims) token.push([3, claims]);
  return [
    [1, 'e-9'],
    [2, '2024-05-01T10:00:00Z'],
    [3, o.action],
    [5, token],
    [
      6,
      [
        [1, 'john@kuma.io'],
        [2, 'team-a'],
      ],
    ],
  ];
}

describe('plain records', () => {
  it('takes the plain way for ordinary token events, and writes what the reference writes', () => {
    const events = [
      tokenEvent(),
      tokenEvent({
        tags: [
          ['z', '1'],
          ['a', ''],
          ['', 'empty key'],
          ['m', '2'],
        ],
      }),
      tokenEvent({
        action: 'GENERATE_USER_TOKEN',
        mesh: '',
        tags: [],
        name: 'jane',
        claimsGroups: ['admins', 'team-b'],
        expiresAt: '',
      }),
      tokenEvent({ action: 'GENERATE_ZONE_TOKEN', mesh: '', tags: [], zone: 'zone-1', scope: ['egress', 'ingress'] }),
      tokenEvent({ action: 'GENERATE_ZONE_CP_TOKEN', mesh: '', tags: [], zone: 'zone-2' }),
      tokenEvent({ claims: false }),
      tokenEvent({ mesh: '', tags: [] }),
      tokenEvent({
        tags: [
          ['__proto__', 'x'],
          ['constructor', 'y'],
        ],
      }),
    ];
    for (const e of events) {
      expect(plain(encode(e), ALL), JSON.stringify(e)).to.equal(RECORDED);
      same([encode(e)], ALL);
      same([encode(e)], SOME_RULES);
    }
    same(events.map(encode), ALL);
    expect(plain(encode(tokenEvent()), NONE)).to.equal(SKIPPED);
  });

  it('takes the plain way for ordinary resource events, and writes what the reference writes', () => {
    const events = [
      resourceEvent(),
      resourceEvent({ mesh: '', groups: [] }),
      resourceEvent({ action: 'VIEW_CLUSTERS', type: 'Dataplane', date: '' }),
      resourceEvent({ type: 'Mesh', name: 'demo', mesh: '' }),
      resourceEvent({ groups: ['a', 'b', 'mesh-system:authenticated'], id: '' }),
      resourceEvent({ date: '2024-05-01T12:00:00.123456+05:30' }),
    ];
    for (const e of events) {
      expect(plain(encode(e), ALL)).to.equal(RECORDED);
      same([encode(e)], ALL);
    }
    same(events.map(encode), ALL);
    expect(plain(encode(resourceEvent({ type: 'DataplaneInsight' })), ALL), 'a skipped default type').to.equal(SKIPPED);
    expect(plain(encode(resourceEvent()), NONE)).to.equal(SKIPPED);
  });

  it('leaves to the reference way what it does not handle, with the same result', () => {
    const cases: Array<[string, Part[]]> = [
      ['a token action with a resource', resourceEvent({ action: 'GENERATE_USER_TOKEN' })],
      ['a resource action with a token', tokenEvent({ action: 'CREATE' })],
      [
        'a token and a resource',
        [
          ...tokenEvent(),
          [
            4,
            [
              [1, 'Mesh'],
              [2, 'm'],
            ],
          ],
        ],
      ],
      ['a token without id', tokenEvent({ id: '' })],
      ['a token id of 1025 characters', tokenEvent({ id: 't'.repeat(1025) })],
      ['a bad expiry', tokenEvent({ expiresAt: 'tomorrow' })],
      [
        'a tag key twice',
        tokenEvent({
          tags: [
            ['a', '1'],
            ['b', '2'],
            ['a', '3'],
          ],
        }),
      ],
      [
        'a non-ASCII tag key',
        tokenEvent({
          tags: [
            ['zé', '1'],
            ['z', '2'],
          ],
        }),
      ],
      ['a tag value with a quote', tokenEvent({ tags: [['a', 'x"y']] })],
      ['a tag value of 1025 characters', tokenEvent({ tags: [['a', 'v'.repeat(1025)]] })],
      ['65 tags', tokenEvent({ tags: Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'] as [string, string]) })],
      ['65 scopes', tokenEvent({ scope: Array.from({ length: 65 }, (_, i) => `s${i}`) })],
      ['a claims group of 1025 characters', tokenEvent({ claimsGroups: ['g'.repeat(1025)] })],
      ['a claims mesh with a backslash', tokenEvent({ mesh: 'de\\mo' })],
      [
        'a tag entry sent as a varint',
        [
          ...tokenEvent({ tags: [] }).slice(0, 4),
          [
            5,
            [
              [1, 't'],
              [3, [[2, { varint: 3 }]]],
            ],
          ],
        ],
      ],
      ['no action', resourceEvent({ action: '' })],
      ['an unknown action', resourceEvent({ action: 'UPDATES' })],
      ['a lowercase action', resourceEvent({ action: 'update' })],
      ['no type', resourceEvent({ type: '' })],
      ['no name', resourceEvent({ name: '' })],
      ['no user name', resourceEvent({ user: '' })],
      ['a quote in a name', resourceEvent({ name: 'we"b' })],
      ['a backslash in a group', resourceEvent({ groups: ['a\\b'] })],
      ['a control character in the user', resourceEvent({ user: 'a\tb' })],
      ['DEL in the mesh', resourceEvent({ mesh: 'de\x7fmo' })],
      ['non-ASCII in a name', resourceEvent({ name: 'wéb' })],
      ['non-ASCII in a type', resourceEvent({ type: 'Träffic' })],
      ['an emoji in a group', resourceEvent({ groups: ['team-😀'] })],
      ['a bad date', resourceEvent({ date: '2024-13-01T10:00:00Z' })],
      ['a date without zone', resourceEvent({ date: '2024-05-01T10:00:00' })],
      ['a date with two fractions', resourceEvent({ date: '2024-05-01T10:00:00.1.5Z' })],
      ['a name of 1024 characters', resourceEvent({ name: 'n'.repeat(1024) })],
      ['a name of 1025 characters', resourceEvent({ name: 'n'.repeat(1025) })],
      ['an id of 1025 characters', resourceEvent({ id: 'i'.repeat(1025) })],
      ['an id of 1000 two-byte characters', resourceEvent({ id: 'é'.repeat(1000) })],
      ['a user of 600 two-byte characters', resourceEvent({ user: 'é'.repeat(600) })],
      ['64 groups', resourceEvent({ groups: Array.from({ length: 64 }, (_, i) => `g${i}`) })],
      ['65 groups', resourceEvent({ groups: Array.from({ length: 65 }, (_, i) => `g${i}`) })],
      ['a group of 1025 characters', resourceEvent({ groups: ['g'.repeat(1025)] })],
      [
        'no resource',
        [
          [3, 'CREATE'],
          [6, [[1, 'u']]],
        ],
      ],
      [
        'no user',
        [
          [3, 'CREATE'],
          [
            4,
            [
              [1, 'Mesh'],
              [2, 'm'],
            ],
          ],
        ],
      ],
      [
        'an empty resource',
        [
          [3, 'CREATE'],
          [4, []],
          [6, [[1, 'u']]],
        ],
      ],
      ['the action twice', [...resourceEvent(), [3, 'DELETE']]],
      [
        'the resource twice',
        [
          ...resourceEvent(),
          [
            4,
            [
              [1, 'Mesh'],
              [2, 'other'],
            ],
          ],
        ],
      ],
      [
        'the user name twice',
        [
          ...resourceEvent({ user: '' }),
          [
            6,
            [
              [1, 'a'],
              [1, 'b'],
            ],
          ],
        ],
      ],
      [
        'the type twice',
        [
          [3, 'CREATE'],
          [
            4,
            [
              [1, 'Mesh'],
              [1, 'Secret'],
              [2, 'x'],
            ],
          ],
          [6, [[1, 'u']]],
        ],
      ],
      [
        'unknown fields',
        [
          [9, 'x'],
          ...resourceEvent(),
          [15, { varint: 7 }],
          [
            4,
            [
              [1, 'A'],
              [2, 'b'],
              [7, 'zz'],
            ],
          ],
        ],
      ],
      [
        'an action sent as a varint',
        [
          [3, { varint: 1 }],
          [
            4,
            [
              [1, 'Mesh'],
              [2, 'm'],
            ],
          ],
          [6, [[1, 'u']]],
        ],
      ],
    ];
    for (const [name, parts] of cases) {
      for (const rules of [ALL, SOME_RULES, NONE]) {
        try {
          same([encode(parts)], rules);
        } catch (err) {
          throw new Error(`${name}: ${(err as Error).message}`);
        }
      }
    }
    expect(plain(encode(cases[0][1]), ALL), 'a token action with a resource').to.equal(FALLBACK);
    expect(plain(encode(resourceEvent({ name: 'wéb' })), ALL)).to.equal(FALLBACK);
  });

  it('agrees with the reference on bytes that are not UTF-8 and on malformed events', () => {
    const invalid = [
      Uint8Array.of(0x77, 0xff, 0x62),
      Uint8Array.of(0xed, 0xa0, 0x80),
      Uint8Array.of(0xc3),
      Uint8Array.of(0xe2, 0x82),
    ];
    const events: Uint8Array[] = [];
    for (const bytes of invalid) {
      events.push(
        encode([
          [3, 'CREATE'],
          [
            4,
            [
              [1, 'Mesh'],
              [2, bytes],
            ],
          ],
          [6, [[1, 'u']]],
        ]),
      );
      events.push(
        encode([
          [3, 'CREATE'],
          [
            4,
            [
              [1, bytes],
              [2, 'n'],
            ],
          ],
          [6, [[1, 'u']]],
        ]),
      );
      events.push(
        encode([
          [3, 'CREATE'],
          [
            4,
            [
              [1, 'Mesh'],
              [2, 'n'],
              [3, bytes],
            ],
          ],
          [
            6,
            [
              [1, 'u'],
              [2, bytes],
            ],
          ],
        ]),
      );
      events.push(
        encode([
          [2, bytes],
          [3, 'CREATE'],
          [
            4,
            [
              [1, 'Mesh'],
              [2, 'n'],
            ],
          ],
          [6, [[1, 'u']]],
        ]),
      );
    }
    const good = encode(resourceEvent());
    events.push(good.subarray(0, good.length - 3)); // truncated inside the user
    events.push(Uint8Array.of(...good, 0x0b)); // a group start that never ends
    events.push(Uint8Array.of(0x1a, 0x7f, 0x41)); // an action longer than the event
    events.push(Uint8Array.of(0x1a, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)); // a length varint too long
    for (const e of events) for (const rules of [ALL, SOME_RULES, NONE]) same([e], rules);
    for (const rules of [ALL, SOME_RULES, NONE]) same(events, rules);
  });

  it('agrees with the reference on thousands of generated events, alone and in batches', () => {
    let seed = 42;
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const pick = <T>(list: readonly T[]): T => list[random(list.length)];
    const strings = [
      '',
      'a',
      'b',
      'demo',
      'm1',
      'Mesh',
      'TrafficPermission',
      'DataplaneInsight',
      'Secret',
      'wé',
      'q"',
      'b\\s',
      'x'.repeat(1024),
      'é'.repeat(513),
      '😀',
    ];
    const actions = [
      '',
      'CREATE',
      'UPDATE',
      'DELETE',
      'VIEW_STATS',
      'VIEW_CONFIG_DUMP',
      'GENERATE_ZONE_TOKEN',
      'create',
      'X',
    ];
    const tokenActions = [
      'GENERATE_DATAPLANE_TOKEN',
      'GENERATE_USER_TOKEN',
      'GENERATE_ZONE_TOKEN',
      'GENERATE_ZONE_CP_TOKEN',
      'CREATE',
      '',
    ];
    const dateTexts = ['', '2024-05-01T10:00:00Z', '2024-05-01T10:00:00.5-03:00', 'yesterday', '2024-02-30T00:00:00Z'];
    const events: Uint8Array[] = [];
    for (let i = 0; i < 3000; i++) {
      const parts = resourceEvent({
        id: pick(strings),
        date: pick(dateTexts),
        action: pick(actions),
        type: pick(strings),
        name: pick(strings),
        mesh: pick(strings),
        user: pick(strings),
        groups: Array.from({ length: random(4) }, () => pick(strings)),
      });
      if (random(20) === 0) parts.push([5, [[1, 'tok']]]);
      if (random(20) === 0) parts.push([12, pick(strings)]);
      events.push(encode(parts));
      const tags = Array.from({ length: random(4) }, () => [pick(strings), pick(strings)] as [string, string]);
      const token = tokenEvent({
        action: pick(tokenActions),
        id: pick(strings),
        expiresAt: pick(dateTexts),
        mesh: pick(strings),
        tags,
        name: pick(strings),
        claimsGroups: Array.from({ length: random(3) }, () => pick(strings)),
        zone: pick(strings),
        scope: Array.from({ length: random(3) }, () => pick(strings)),
        claims: random(10) > 0,
      });
      events.push(encode(token));
    }
    for (const rules of [ALL, SOME_RULES]) {
      for (let i = 0; i < events.length; i += 100) same(events.slice(i, i + 100), rules);
    }
    const plainOnes = events.filter((e) => plain(e, ALL) !== FALLBACK).length;
    expect(plainOnes, 'some generated events take the plain way').to.be.greaterThan(100);
  });
});
