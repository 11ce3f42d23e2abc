import { expect } from 'chai';
import { ACTIONS } from '../../src/rules/actions';
import { compileRules, type RuleSubject } from '../../src/rules/matcher';
import type { AccessAudit, AccessAuditRule } from '../../src/rules/model';
import { parseAccessAudit } from '../../src/rules/parse';
import { DEFAULT_SKIP_TYPES, typeRegistry } from '../../src/rules/resource-types';

function rule(fields: Partial<AccessAuditRule>): AccessAuditRule {
  return { types: [], mesh: '', access: [], accessAll: false, ...fields };
}

function audit(name: string, ...rules: Array<Partial<AccessAuditRule>>): AccessAudit {
  return { name, rules: rules.map(rule) };
}

function onResource(action: string, type: string, name: string, mesh: string): RuleSubject {
  return { action, resource: { type, name, mesh } };
}

function onToken(action: string, mesh?: string): RuleSubject {
  return { action, token: { claims: mesh === undefined ? {} : { mesh } } };
}

describe('rule matcher', () => {
  const table: Array<[string, AccessAudit[], RuleSubject, boolean]> = [
    // types
    [
      'covers every type off the skip list when the rule lists no types',
      [audit('a', { access: ['CREATE'] })],
      onResource('CREATE', 'TrafficPermission', 'tp', 'default'),
      true,
    ],
    [
      'covers a global-scoped type when the rule lists no types and no mesh',
      [audit('a', { access: ['DELETE'] })],
      onResource('DELETE', 'Zone', 'zone-1', ''),
      true,
    ],
    [
      'does not cover a type on the skip list when the rule lists no types',
      [audit('a', { accessAll: true })],
      onResource('UPDATE', 'DataplaneInsight', 'dp', 'default'),
      false,
    ],
    [
      'does not cover a skipped type in a rule that sets mesh and lists no types',
      [audit('a', { accessAll: true, mesh: 'default' })],
      onResource('UPDATE', 'MeshInsight', 'default', ''),
      false,
    ],
    [
      'covers a type on the skip list when the rule lists it',
      [audit('a', { types: ['DataplaneInsight'], access: ['UPDATE'] })],
      onResource('UPDATE', 'DataplaneInsight', 'dp', 'default'),
      true,
    ],
    [
      'covers a listed type',
      [audit('a', { types: ['TrafficRoute', 'Mesh'], access: ['CREATE'] })],
      onResource('CREATE', 'TrafficRoute', 'r', 'demo'),
      true,
    ],
    [
      'does not cover a type the rule does not list',
      [audit('a', { types: ['TrafficRoute'], access: ['CREATE'] })],
      onResource('CREATE', 'TrafficPermission', 'tp', 'demo'),
      false,
    ],
    [
      'covers an inspected Dataplane',
      [audit('a', { types: ['Dataplane'], access: ['VIEW_CONFIG_DUMP'] })],
      onResource('VIEW_CONFIG_DUMP', 'Dataplane', 'dp-1', 'default'),
      true,
    ],
    // access
    [
      'does not cover an action the rule does not list',
      [audit('a', { access: ['CREATE', 'DELETE'] })],
      onResource('UPDATE', 'TrafficRoute', 'r', 'default'),
      false,
    ],
    [
      'covers any resource action with accessAll',
      [audit('a', { accessAll: true })],
      onResource('VIEW_CLUSTERS', 'ZoneEgress', 'e', ''),
      true,
    ],
    [
      'covers any token action with accessAll',
      [audit('a', { accessAll: true })],
      onToken('GENERATE_ZONE_CP_TOKEN'),
      true,
    ],
    [
      'lets accessAll win over access',
      [audit('a', { access: ['CREATE'], accessAll: true })],
      onResource('DELETE', 'TrafficRoute', 'r', 'default'),
      true,
    ],
    [
      'covers nothing with a rule that sets neither access nor accessAll',
      [audit('a', { types: ['TrafficRoute'], mesh: 'default' })],
      onResource('CREATE', 'TrafficRoute', 'r', 'default'),
      false,
    ],
    // mesh
    [
      'covers an action in the rule mesh',
      [audit('a', { mesh: 'default', access: ['CREATE'] })],
      onResource('CREATE', 'MeshTimeout', 't', 'default'),
      true,
    ],
    [
      'does not cover an action in another mesh',
      [audit('a', { mesh: 'default', access: ['CREATE'] })],
      onResource('CREATE', 'MeshTimeout', 't', 'demo'),
      false,
    ],
    [
      'does not cover a global-scoped resource with a rule that sets mesh',
      [audit('a', { mesh: 'default', accessAll: true })],
      onResource('CREATE', 'Zone', 'default', ''),
      false,
    ],
    [
      'covers a listed type in the rule mesh',
      [audit('a', { types: ['TrafficRoute'], mesh: 'default', access: ['CREATE'] })],
      onResource('CREATE', 'TrafficRoute', 'r', 'default'),
      true,
    ],
    [
      'does not cover a listed type in another mesh',
      [audit('a', { types: ['TrafficRoute'], mesh: 'default', access: ['CREATE'] })],
      onResource('CREATE', 'TrafficRoute', 'r', 'demo'),
      false,
    ],
    [
      'covers any mesh with a rule that sets none',
      [audit('a', { types: ['TrafficRoute'], access: ['CREATE'] })],
      onResource('CREATE', 'TrafficRoute', 'r', 'anything'),
      true,
    ],
    [
      'takes the name of a Mesh resource as its mesh',
      [audit('a', { types: ['Mesh'], mesh: 'default', access: ['CREATE'] })],
      onResource('CREATE', 'Mesh', 'default', ''),
      true,
    ],
    [
      'does not cover another Mesh resource with a rule that sets mesh',
      [audit('a', { types: ['Mesh'], mesh: 'default', access: ['CREATE'] })],
      onResource('CREATE', 'Mesh', 'demo', ''),
      false,
    ],
    [
      'uses the Mesh name even when the event carries another mesh',
      [audit('a', { mesh: 'default', access: ['UPDATE'] })],
      onResource('UPDATE', 'Mesh', 'default', 'demo'),
      true,
    ],
    // tokens
    [
      'covers a dataplane token of the rule mesh by its claims.mesh',
      [audit('a', { mesh: 'demo', access: ['GENERATE_DATAPLANE_TOKEN'] })],
      onToken('GENERATE_DATAPLANE_TOKEN', 'demo'),
      true,
    ],
    [
      'does not cover a dataplane token of another mesh',
      [audit('a', { mesh: 'demo', access: ['GENERATE_DATAPLANE_TOKEN'] })],
      onToken('GENERATE_DATAPLANE_TOKEN', 'default'),
      false,
    ],
    [
      'does not cover a dataplane token without claims.mesh with a rule that sets mesh',
      [audit('a', { mesh: 'demo', accessAll: true })],
      onToken('GENERATE_DATAPLANE_TOKEN'),
      false,
    ],
    [
      'does not cover a dataplane token with null claims with a rule that sets mesh',
      [audit('a', { mesh: 'demo', accessAll: true })],
      { action: 'GENERATE_DATAPLANE_TOKEN', token: { claims: null } },
      false,
    ],
    [
      'covers a dataplane token of any mesh with a rule that sets none',
      [audit('a', { access: ['GENERATE_DATAPLANE_TOKEN'] })],
      onToken('GENERATE_DATAPLANE_TOKEN', 'demo'),
      true,
    ],
    [
      'never covers a user token with a rule that sets mesh, whatever its claims',
      [audit('a', { mesh: 'demo', accessAll: true })],
      onToken('GENERATE_USER_TOKEN', 'demo'),
      false,
    ],
    [
      'never covers a zone token with a rule that sets mesh',
      [audit('a', { mesh: 'demo', accessAll: true })],
      onToken('GENERATE_ZONE_TOKEN', 'demo'),
      false,
    ],
    [
      'never covers a zone CP token with a rule that sets mesh',
      [audit('a', { mesh: 'demo', accessAll: true })],
      onToken('GENERATE_ZONE_CP_TOKEN', 'demo'),
      false,
    ],
    [
      'covers a user token with a rule that sets no mesh',
      [audit('a', { access: ['GENERATE_USER_TOKEN'] })],
      onToken('GENERATE_USER_TOKEN'),
      true,
    ],
    [
      'does not cover a token action with a rule that lists types and accessAll',
      [audit('a', { types: ['Dataplane'], accessAll: true })],
      onToken('GENERATE_DATAPLANE_TOKEN', 'default'),
      false,
    ],
    [
      'does not cover a token action with a rule that lists types and the action',
      [audit('a', { types: ['Dataplane'], access: ['GENERATE_DATAPLANE_TOKEN'] })],
      onToken('GENERATE_DATAPLANE_TOKEN', 'default'),
      false,
    ],
    // OR / AND
    [
      'covers with any rule of an audit',
      [audit('a', { access: ['CREATE'] }, { access: ['DELETE'] })],
      onResource('DELETE', 'TrafficRoute', 'r', 'default'),
      true,
    ],
    [
      'covers with any audit',
      [audit('a', { access: ['CREATE'] }), audit('b', { access: ['DELETE'] })],
      onResource('DELETE', 'TrafficRoute', 'r', 'default'),
      true,
    ],
    [
      'needs every field of one rule, not fields spread over rules',
      [
        audit(
          'a',
          { types: ['Mesh'], access: ['UPDATE'] },
          { mesh: 'default', types: ['TrafficRoute'], access: ['CREATE'] },
        ),
      ],
      onResource('CREATE', 'Mesh', 'default', ''),
      false,
    ],
    ['covers nothing without audits', [], onResource('CREATE', 'TrafficRoute', 'r', 'default'), false],
    ['covers nothing with an audit without rules', [audit('a')], onToken('GENERATE_USER_TOKEN'), false],
    // bad input
    [
      'does not cover an unknown action',
      [audit('a', { accessAll: true })],
      onResource('CREAT', 'TrafficRoute', 'r', 'default'),
      false,
    ],
    [
      'does not cover a resource action without resource',
      [audit('a', { accessAll: true })],
      { action: 'CREATE', resource: null },
      false,
    ],
    [
      'does not cover a resource action that carries a token',
      [audit('a', { accessAll: true })],
      { action: 'CREATE', token: { claims: {} } },
      false,
    ],
    [
      'does not cover a token action without token',
      [audit('a', { accessAll: true })],
      { action: 'GENERATE_USER_TOKEN', token: null },
      false,
    ],
    [
      'does not cover a token action that carries a resource',
      [audit('a', { accessAll: true })],
      { action: 'GENERATE_ZONE_TOKEN', resource: { type: 'Zone', name: 'z', mesh: '' } },
      false,
    ],
    [
      'does not cover a resource without type',
      [audit('a', { accessAll: true })],
      onResource('CREATE', '', 'r', 'default'),
      false,
    ],
    [
      'does not cover a resource whose mesh is not a string',
      [audit('a', { accessAll: true })],
      { action: 'CREATE', resource: { type: 'TrafficRoute', name: 'r', mesh: 7 as unknown as string } },
      false,
    ],
    [
      'does not cover a subject that is not an object',
      [audit('a', { accessAll: true })],
      null as unknown as RuleSubject,
      false,
    ],
    [
      'does not cover an action that is not a string',
      [audit('a', { accessAll: true })],
      { action: 1 as unknown as string, resource: { type: 'Mesh', name: 'm', mesh: '' } },
      false,
    ],
  ];

  describe('covers', () => {
    for (const [name, audits, subject, expected] of table) {
      it(name, () => {
        expect(compileRules(audits, DEFAULT_SKIP_TYPES).covers(subject)).to.equal(expected);
      });
    }

    it('does not throw on a subject whose getter throws', () => {
      const rules = compileRules([audit('a', { accessAll: true })], DEFAULT_SKIP_TYPES);
      const subject = {
        action: 'CREATE',
        get resource(): never {
          throw new Error('boom');
        },
      };
      expect(rules.covers(subject)).to.equal(false);
      expect(rules.explain(subject)).to.deep.equal([]);
    });

    it('uses the skip list it is given, not the default one', () => {
      const audits = [audit('a', { accessAll: true })];
      expect(compileRules(audits, []).covers(onResource('UPDATE', 'DataplaneInsight', 'dp', 'default'))).to.equal(true);
      expect(
        compileRules(audits, ['TrafficRoute']).covers(onResource('UPDATE', 'TrafficRoute', 'r', 'default')),
      ).to.equal(false);
    });

    it('covers every action with accessAll and none with an empty rule', () => {
      const all = compileRules([audit('a', { accessAll: true })], DEFAULT_SKIP_TYPES);
      const none = compileRules([audit('a', {})], DEFAULT_SKIP_TYPES);
      for (const action of ACTIONS) {
        const subject = action.startsWith('GENERATE_')
          ? onToken(action, 'default')
          : onResource(action, 'Dataplane', 'dp', 'default');
        expect(all.covers(subject), action).to.equal(true);
        expect(none.covers(subject), action).to.equal(false);
      }
    });

    it('covers what the parsed spec examples say, in both YAML forms', () => {
      const knownTypes = typeRegistry();
      const docs = [
        {
          type: 'AccessAudit',
          name: 'audit-1',
          rules: [
            {
              types: ['TrafficPermission', 'TrafficRoute', 'Mesh'],
              mesh: 'default',
              access: ['CREATE', 'UPDATE', 'DELETE'],
              accessAll: true,
            },
          ],
        },
        {
          apiVersion: 'kuma.io/v1alpha1',
          kind: 'AccessAudit',
          metadata: { name: 'audit-2' },
          spec: { rules: [{ access: ['GENERATE_DATAPLANE_TOKEN'], mesh: 'demo' }] },
        },
      ];
      const audits = docs.map((doc) => {
        const res = parseAccessAudit(doc, { knownTypes });
        if (res.audit === undefined) throw new Error(JSON.stringify(res.violations));
        return res.audit;
      });
      const rules = compileRules(audits, DEFAULT_SKIP_TYPES);
      expect(rules.covers(onResource('VIEW_STATS', 'TrafficRoute', 'r', 'default'))).to.equal(true);
      expect(rules.covers(onResource('UPDATE', 'Mesh', 'default', ''))).to.equal(true);
      expect(rules.covers(onResource('UPDATE', 'TrafficRoute', 'r', 'demo'))).to.equal(false);
      expect(rules.covers(onResource('UPDATE', 'MeshTimeout', 't', 'default'))).to.equal(false);
      expect(rules.covers(onToken('GENERATE_DATAPLANE_TOKEN', 'demo'))).to.equal(true);
      expect(rules.covers(onToken('GENERATE_DATAPLANE_TOKEN', 'default'))).to.equal(false);
    });
  });

  describe('explain', () => {
    const audits = [
      audit('b', { access: ['CREATE'] }, { types: ['TrafficPermission'], mesh: 'default', access: ['CREATE'] }),
      audit(
        'a',
        { accessAll: true },
        {},
        { types: ['TrafficPermission'], access: ['CREATE', 'DELETE'] },
        { mesh: 'demo', accessAll: true },
      ),
    ];
    const rules = compileRules(audits, DEFAULT_SKIP_TYPES);

    it('lists every covering rule in audit-name then rule order', () => {
      expect(rules.explain(onResource('CREATE', 'TrafficPermission', 'tp', 'default'))).to.deep.equal([
        { audit: 'a', ruleIndex: 0 },
        { audit: 'a', ruleIndex: 2 },
        { audit: 'b', ruleIndex: 0 },
        { audit: 'b', ruleIndex: 1 },
      ]);
    });

    it('lists only the rules of the mesh and action asked about', () => {
      expect(rules.explain(onResource('DELETE', 'TrafficPermission', 'tp', 'demo'))).to.deep.equal([
        { audit: 'a', ruleIndex: 0 },
        { audit: 'a', ruleIndex: 2 },
        { audit: 'a', ruleIndex: 3 },
      ]);
    });

    it('lists nothing for an action nothing covers', () => {
      const none = compileRules([audit('a', { types: ['Mesh'], access: ['CREATE'] })], DEFAULT_SKIP_TYPES);
      expect(none.explain(onResource('DELETE', 'Mesh', 'default', ''))).to.deep.equal([]);
    });

    it('agrees with covers on every case of the covers table', () => {
      for (const [name, cases, subject, expected] of table) {
        expect(compileRules(cases, DEFAULT_SKIP_TYPES).explain(subject).length > 0, name).to.equal(expected);
      }
    });

    it('exposes the compiled audits sorted by name', () => {
      expect(rules.audits.map((a) => a.name)).to.deep.equal(['a', 'b']);
    });
  });

  describe('with 10,000 audits', () => {
    // Each audit covers only its own mesh: nearly every event is checked against rules that do not match.
    const audits: AccessAudit[] = [];
    for (let i = 0; i < 10_000; i++) {
      audits.push(
        audit(
          `audit-${String(i).padStart(5, '0')}`,
          { types: ['TrafficRoute'], mesh: `mesh-${i}`, access: ['CREATE'] },
          { mesh: `mesh-${i}`, access: ['DELETE', 'GENERATE_DATAPLANE_TOKEN'] },
        ),
      );
    }
    const rules = compileRules(audits, DEFAULT_SKIP_TYPES);

    const cases: Array<[string, RuleSubject, boolean]> = [
      ['a typed action in a mesh of one audit', onResource('CREATE', 'TrafficRoute', 'r', 'mesh-9999'), true],
      ['a default-typed action in a mesh of one audit', onResource('DELETE', 'MeshTimeout', 't', 'mesh-42'), true],
      ['a dataplane token of a mesh of one audit', onToken('GENERATE_DATAPLANE_TOKEN', 'mesh-0'), true],
      ['an action in a mesh no audit names', onResource('CREATE', 'TrafficRoute', 'r', 'mesh-10000'), false],
      ['an untyped action on a type no rule lists', onResource('CREATE', 'TrafficPermission', 'tp', 'mesh-5'), false],
      ['an action no rule lists', onResource('UPDATE', 'TrafficRoute', 'r', 'mesh-5'), false],
      ['a skipped type', onResource('DELETE', 'ServiceInsight', 's', 'mesh-5'), false],
      ['a user token', onToken('GENERATE_USER_TOKEN', 'mesh-5'), false],
    ];
    for (const [name, subject, expected] of cases) {
      it(`${expected ? 'covers' : 'does not cover'} ${name}`, () => {
        expect(rules.covers(subject)).to.equal(expected);
      });
    }

    it('explains a match by its one audit', () => {
      expect(rules.explain(onResource('CREATE', 'TrafficRoute', 'r', 'mesh-1234'))).to.deep.equal([
        { audit: 'audit-01234', ruleIndex: 0 },
      ]);
    });
  });

  it('covers agrees with explain on 20,000 generated rule sets and subjects, skipped types and meshless tokens included', () => {
    // A small deterministic generator: few values, so that rules and subjects meet often.
    let seed = 12345;
    const pick = <T>(xs: readonly T[]): T => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return xs[Math.floor(seed / 65536) % xs.length]; // the high bits: an LCG's low bits repeat quickly
    };
    const actions: AccessAuditRule['access'] = [
      'CREATE',
      'UPDATE',
      'DELETE',
      'GENERATE_DATAPLANE_TOKEN',
      'GENERATE_USER_TOKEN',
      'VIEW_CONFIG_DUMP',
    ];
    const types = ['Mesh', 'TrafficRoute', 'DataplaneInsight', 'MeshInsight'];
    const meshes = ['', 'default', 'demo'];
    for (let i = 0; i < 20_000; i++) {
      const audits = Array.from({ length: 1 + (i % 3) }, (_, a) =>
        audit(
          `a${a}`,
          ...Array.from({ length: 1 + (i % 2) }, () => ({
            types: pick([[], [], [pick(types)], [pick(types), pick(types)]]),
            mesh: pick(meshes),
            access: pick([[], [pick(actions)], [pick(actions), pick(actions)]]),
            accessAll: pick([false, false, true]),
          })),
        ),
      );
      const action = pick(actions);
      const subject = action.startsWith('GENERATE_')
        ? onToken(action, pick([undefined, ...meshes]))
        : onResource(action, pick(types), pick(['default', 'other']), pick(meshes));
      const rules = compileRules(audits, DEFAULT_SKIP_TYPES);
      expect(rules.covers(subject), JSON.stringify({ audits, subject })).to.equal(rules.explain(subject).length > 0);
    }
  });
});
