import { expect } from 'chai';
import type { AccessAudit } from '../../src/rules/model';
import type { Violation } from '../../src/validators';
import { parseAccessAudit, validateAccessAudit } from '../../src/rules/parse';
import { typeRegistry } from '../../src/rules/resource-types';

const opts = { knownTypes: typeRegistry() };

/** A violation as a user reads it: `field: description`, the description alone for the document itself. */
function show(v: Violation): string {
  return v.field === '' ? v.description : `${v.field}: ${v.description}`;
}

function universal(rules: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'AccessAudit', name: 'audit-1', rules, ...extra };
}

function kubernetes(spec: unknown, metadata: unknown = { name: 'audit-2' }): Record<string, unknown> {
  return { apiVersion: 'kuma.io/v1alpha1', kind: 'AccessAudit', metadata, spec };
}

const LONG_NAME = 'a'.repeat(254);
const NAME_RULE = 'use lowercase letters, digits, "-" and ".", starting and ending with a letter or digit';

describe('AccessAudit rules that set mesh, by the scope of their types', () => {
  const rule = (types: string[]): unknown[] => [{ types, mesh: 'default', access: ['CREATE'] }];
  const global = (what: string): string =>
    `rules[0].mesh: never matches: ${what} global-scoped (no mesh), and a rule that sets mesh covers only mesh-scoped types and the Mesh resource itself; remove mesh, or list mesh-scoped types`;

  it('refuses mesh on a rule that lists only global-scoped types, saying why', () => {
    expect(parseAccessAudit(universal(rule(['Zone'])), opts).violations.map(show)).to.deep.equal([global('"Zone" is')]);
    expect(
      validateAccessAudit({ name: 'a', rules: rule(['Zone', 'AccessAudit']) } as never, opts).violations.map(show),
    ).to.deep.equal([global('"Zone", "AccessAudit" are')]);
  });

  it('accepts mesh with the Mesh resource itself, whose mesh is its own name', () => {
    const res = parseAccessAudit(universal(rule(['Mesh'])), opts);
    expect([res.violations, res.warnings]).to.deep.equal([[], []]);
  });

  it('accepts mesh with mesh-scoped types among global ones, with a warning for each global one', () => {
    const res = parseAccessAudit(universal(rule(['TrafficRoute', 'Zone'])), opts);
    expect(res.violations).to.deep.equal([]);
    expect(res.warnings.map(show)).to.deep.equal([
      'rules[0].types[1]: "Zone" is global-scoped: a rule that sets mesh never covers it',
    ]);
  });

  it('takes the scope of an extra type from the configuration: mesh-scoped unless said otherwise', () => {
    const knownTypes = typeRegistry([
      { name: 'MyPolicy', scope: 'mesh' },
      { name: 'MyCluster', scope: 'global' },
    ]);
    expect(parseAccessAudit(universal(rule(['MyPolicy'])), { knownTypes }).violations).to.deep.equal([]);
    expect(parseAccessAudit(universal(rule(['MyCluster'])), { knownTypes }).violations.map(show)).to.deep.equal([
      global('"MyCluster" is'),
    ]);
  });

  it('only warns for a resource stored before the check (meshOnGlobalTypes: warning)', () => {
    const res = validateAccessAudit({ name: 'old', rules: rule(['Zone']) } as never, {
      ...opts,
      meshOnGlobalTypes: 'warning',
    });
    expect(res.violations).to.deep.equal([]);
    expect(res.audit?.rules[0]?.mesh).to.equal('default');
    expect(res.warnings.map(show)).to.deep.equal([global('"Zone" is')]);
  });
});

describe('AccessAudit parsing', () => {
  describe('accepts', () => {
    it('reads the Universal form of the spec example', () => {
      const res = parseAccessAudit(
        universal([
          {
            types: ['TrafficPermission', 'TrafficRoute', 'Mesh'],
            mesh: 'default',
            access: ['CREATE', 'UPDATE', 'DELETE'],
            accessAll: true,
          },
        ]),
        opts,
      );
      expect(res.violations).to.deep.equal([]);
      expect(res.audit).to.deep.equal({
        name: 'audit-1',
        rules: [
          {
            types: ['TrafficPermission', 'TrafficRoute', 'Mesh'],
            mesh: 'default',
            access: ['CREATE', 'UPDATE', 'DELETE'],
            accessAll: true,
          },
        ],
      });
    });

    it('reads the Kubernetes form of the spec example', () => {
      const res = parseAccessAudit(
        kubernetes({ rules: [{ access: ['GENERATE_DATAPLANE_TOKEN'], mesh: 'demo' }] }),
        opts,
      );
      expect(res.violations).to.deep.equal([]);
      expect(res.warnings).to.deep.equal([]);
      expect(res.audit).to.deep.equal({
        name: 'audit-2',
        rules: [{ types: [], mesh: 'demo', access: ['GENERATE_DATAPLANE_TOKEN'], accessAll: false }],
      });
    });

    it('reads both forms of the same audit into the same result', () => {
      const rules = [{ types: ['Dataplane'], access: ['VIEW_STATS'] }];
      const u = parseAccessAudit(universal(rules, { name: 'same' }), opts);
      const k = parseAccessAudit(kubernetes({ rules }, { name: 'same' }), opts);
      expect(u.audit).to.not.equal(undefined);
      expect(k.audit).to.deep.equal(u.audit);
    });

    it('defaults absent and null fields and removes duplicate entries', () => {
      const res = parseAccessAudit(
        universal([
          { types: ['Mesh', 'Mesh', 'Zone'], access: ['CREATE', 'CREATE'], mesh: null, accessAll: null },
          { types: null, access: ['DELETE'] },
        ]),
        opts,
      );
      expect(res.violations).to.deep.equal([]);
      expect(res.audit?.rules).to.deep.equal([
        { types: ['Mesh', 'Zone'], mesh: '', access: ['CREATE'], accessAll: false },
        { types: [], mesh: '', access: ['DELETE'], accessAll: false },
      ]);
    });

    it('accepts a type the known types are extended with', () => {
      const res = parseAccessAudit(universal([{ types: ['MyPolicy'], access: ['CREATE'] }]), {
        knownTypes: typeRegistry([{ name: 'MyPolicy', scope: 'mesh' }]),
      });
      expect(res.violations).to.deep.equal([]);
      expect(res.audit?.rules[0]?.types).to.deep.equal(['MyPolicy']);
    });

    it('accepts what kumactl and kubectl add to an exported resource', () => {
      const u = parseAccessAudit(
        universal([{ accessAll: true }], {
          creationTime: new Date(0),
          modificationTime: new Date(0),
          labels: { team: 'a' },
        }),
        opts,
      );
      const k = parseAccessAudit(
        kubernetes(
          { rules: [{ accessAll: true }] },
          { name: 'audit-2', uid: 'x', resourceVersion: '1', labels: {}, annotations: {} },
        ),
        opts,
      );
      expect(u.violations.map(show)).to.deep.equal([]);
      expect(k.violations.map(show)).to.deep.equal([]);
    });
  });

  describe('rejects, naming the field', () => {
    const table: Array<[string, unknown, string[]]> = [
      ['a list instead of a document', [], ['must be a mapping (an AccessAudit resource), got an empty list']],
      [
        'a scalar instead of a document',
        'AccessAudit',
        ['must be a mapping (an AccessAudit resource), got "AccessAudit"'],
      ],
      ['an empty document', null, ['must be a mapping (an AccessAudit resource), got null']],
      ['a missing type', { name: 'a', rules: [] }, ['type: is required, must be "AccessAudit"']],
      [
        'another resource type',
        { ...universal([]), type: 'TrafficPermission' },
        ['type: must be "AccessAudit", got "TrafficPermission"'],
      ],
      [
        'a missing apiVersion',
        { kind: 'AccessAudit', metadata: { name: 'a' } },
        ['apiVersion: is required, must be "kuma.io/v1alpha1"'],
      ],
      [
        'another apiVersion',
        { ...kubernetes({}), apiVersion: 'kuma.io/v1' },
        ['apiVersion: must be "kuma.io/v1alpha1", got "kuma.io/v1"'],
      ],
      ['another kind', { ...kubernetes({}), kind: 'MeshTimeout' }, ['kind: must be "AccessAudit", got "MeshTimeout"']],
      [
        'a missing kind',
        { apiVersion: 'kuma.io/v1alpha1', metadata: { name: 'a' } },
        ['kind: is required, must be "AccessAudit"'],
      ],
      ['a missing name', { type: 'AccessAudit', rules: [] }, ['name: is required']],
      ['an empty name', universal([], { name: '' }), ['name: is required']],
      ['a name that is not a string', universal([], { name: 42 }), ['name: must be a string, got 42']],
      [
        'a name with capitals',
        universal([], { name: 'Audit_1' }),
        [`name: "Audit_1" is not a lowercase RFC 1123 subdomain: ${NAME_RULE}`],
      ],
      [
        'a name starting with a dash',
        universal([], { name: '-audit' }),
        [`name: "-audit" is not a lowercase RFC 1123 subdomain: ${NAME_RULE}`],
      ],
      [
        'a name longer than 253 characters',
        universal([], { name: LONG_NAME }),
        ['name: must be at most 253 characters, got 254'],
      ],
      [
        'a missing metadata',
        { apiVersion: 'kuma.io/v1alpha1', kind: 'AccessAudit', spec: {} },
        ['metadata.name: is required'],
      ],
      ['a missing metadata.name', kubernetes({}, { namespace: 'x' }), ['metadata.name: is required']],
      [
        'metadata that is not a mapping, once',
        kubernetes({}, 'audit-2'),
        ['metadata: must be a mapping, got "audit-2"'],
      ],
      ['a spec that is not a mapping, once', kubernetes(['x']), ['spec: must be a mapping, got a list']],
      ['a misspelt top-level field', { ...universal([]), rule: [] }, ['rule: unknown field, did you mean "rules"?']],
      [
        'a mesh on the audit itself',
        { ...universal([]), mesh: 'default' },
        ['mesh: unknown field: an AccessAudit is global-scoped, set mesh on a rule'],
      ],
      [
        'a misspelt metadata field',
        kubernetes({}, { nam: 'a', name: 'b' }),
        ['metadata.nam: unknown field, did you mean "name"?'],
      ],
      ['a misspelt spec field', kubernetes({ rule: [] }), ['spec.rule: unknown field, did you mean "rules"?']],
      ['a Universal field in the Kubernetes form', { ...kubernetes({}), type: 'AccessAudit' }, ['type: unknown field']],
      [
        'rules that are not a list',
        universal({ access: ['CREATE'] }),
        ['rules: must be a list of rules, got a mapping'],
      ],
      [
        'a rule that is not a mapping',
        universal(['CREATE']),
        ['rules[0]: must be a mapping of types, mesh, access and accessAll, got "CREATE"'],
      ],
      [
        'a misspelt rule field',
        universal([{ acess: ['CREATE'], accessAll: true }]),
        ['rules[0].acess: unknown field, did you mean "access"?'],
      ],
      [
        'type instead of types',
        universal([{ type: ['Mesh'], accessAll: true }]),
        ['rules[0].type: unknown field, did you mean "types"?'],
      ],
      [
        'a rule field with an odd name',
        universal([{ 'bad key': 1, accessAll: true }]),
        ['rules[0]["bad key"]: unknown field'],
      ],
      [
        'a misspelt action',
        universal([{ access: ['CREAT'] }]),
        ['rules[0].access[0]: unknown action "CREAT", did you mean "CREATE"?'],
      ],
      [
        'a lowercase action',
        universal([{ access: ['READ', 'delete'] }]),
        [
          'rules[0].access[0]: unknown action "READ"',
          'rules[0].access[1]: unknown action "delete", did you mean "DELETE"?',
        ],
      ],
      [
        'a misspelt type',
        universal([{ types: ['TrafficPermision'], access: ['CREATE'] }]),
        ['rules[0].types[0]: unknown type "TrafficPermision", did you mean "TrafficPermission"?'],
      ],
      [
        'a type nothing is near',
        universal([{ types: ['Mesh', 'Banana'], access: ['CREATE'] }]),
        ['rules[0].types[1]: unknown type "Banana"'],
      ],
      ['an empty type', universal([{ types: [''], access: ['CREATE'] }]), ['rules[0].types[0]: unknown type ""']],
      [
        'a type known to nobody in the Kubernetes form',
        kubernetes({ rules: [{ access: ['CREATE'] }, { types: ['TrafficRoutes'], access: ['CREATE'] }] }),
        ['spec.rules[1].types[0]: unknown type "TrafficRoutes", did you mean "TrafficRoute"?'],
      ],
      [
        'types that are a string',
        universal([{ types: 'Mesh', access: ['CREATE'] }]),
        ['rules[0].types: must be a list of strings, got "Mesh"'],
      ],
      [
        'access that is a string',
        universal([{ access: 'CREATE' }]),
        ['rules[0].access: must be a list of strings, got "CREATE"'],
      ],
      [
        'a list entry that is not a string',
        universal([{ access: ['CREATE', 3] }]),
        ['rules[0].access[1]: must be a string, got 3'],
      ],
      [
        'accessAll that is not a boolean',
        universal([{ accessAll: 'yes' }]),
        ['rules[0].accessAll: must be a boolean, got "yes"'],
      ],
      [
        'a mesh that is not a string',
        universal([{ mesh: ['default'], accessAll: true }]),
        ['rules[0].mesh: must be a string, got a list'],
      ],
      [
        'a mesh name with capitals',
        universal([{ mesh: 'Default', accessAll: true }]),
        [`rules[0].mesh: "Default" is not a lowercase RFC 1123 subdomain: ${NAME_RULE}`],
      ],
    ];
    for (const [name, doc, expected] of table) {
      it(`rejects ${name}`, () => {
        const res = parseAccessAudit(doc, opts);
        expect(res.violations.map(show)).to.deep.equal(expected);
        expect(res.audit).to.equal(undefined);
      });
    }

    it('collects every violation of a document, not only the first', () => {
      const res = parseAccessAudit(
        {
          type: 'AccessAudits',
          name: 'Audit',
          rules: [
            { types: ['Meshh', 'Zone', 7], access: ['CREAT', 'UPDATE'], accesAll: true },
            'DELETE',
            { mesh: 'demo', accessAll: 'true', access: ['VIEW_STAT'] },
          ],
        },
        opts,
      );
      expect(res.violations.map(show)).to.deep.equal([
        'type: must be "AccessAudit", got "AccessAudits"',
        `name: "Audit" is not a lowercase RFC 1123 subdomain: ${NAME_RULE}`,
        'rules[0].accesAll: unknown field, did you mean "accessAll"?',
        'rules[0].types[0]: unknown type "Meshh", did you mean "Mesh"?',
        'rules[0].types[2]: must be a string, got 7',
        'rules[0].access[0]: unknown action "CREAT", did you mean "CREATE"?',
        'rules[1]: must be a mapping of types, mesh, access and accessAll, got "DELETE"',
        'rules[2].access[0]: unknown action "VIEW_STAT", did you mean "VIEW_STATS"?',
        'rules[2].accessAll: must be a boolean, got "true"',
      ]);
      expect(res.audit).to.equal(undefined);
    });

    it('reports the Kubernetes paths of every broken section', () => {
      const res = parseAccessAudit(
        { apiVersion: 'v1', kind: 'AccessAudit', metadata: { name: 'UPPER' }, spec: { rules: [{ access: ['NOPE'] }] } },
        opts,
      );
      expect(res.violations.map(show)).to.deep.equal([
        'apiVersion: must be "kuma.io/v1alpha1", got "v1"',
        `metadata.name: "UPPER" is not a lowercase RFC 1123 subdomain: ${NAME_RULE}`,
        'spec.rules[0].access[0]: unknown action "NOPE"',
      ]);
    });
  });

  describe('warns but accepts', () => {
    const table: Array<[string, unknown, string[]]> = [
      [
        'a rule with neither access nor accessAll',
        universal([{ types: ['Mesh'] }]),
        ['rules[0]: covers no action: set access or accessAll'],
      ],
      [
        'a rule with empty access and accessAll false',
        universal([{ access: [], accessAll: false }]),
        ['rules[0]: covers no action: set access or accessAll'],
      ],
      [
        'an empty rule in the Kubernetes form',
        kubernetes({ rules: [{ accessAll: true }, {}] }),
        ['spec.rules[1]: covers no action: set access or accessAll'],
      ],
      ['absent rules', { type: 'AccessAudit', name: 'a' }, ['rules: no rules: this AccessAudit covers no action']],
      ['empty rules', universal([]), ['rules: no rules: this AccessAudit covers no action']],
      ['an absent spec', kubernetes(undefined), ['spec.rules: no rules: this AccessAudit covers no action']],
      [
        'access and accessAll together',
        universal([{ access: ['CREATE'], accessAll: true }]),
        ['rules[0].access: ignored: accessAll is true and covers every action'],
      ],
      [
        'a token action in a rule that lists types',
        universal([
          { types: ['Dataplane'], access: ['VIEW_STATS', 'GENERATE_DATAPLANE_TOKEN', 'GENERATE_DATAPLANE_TOKEN'] },
        ]),
        ['rules[0].access[1]: "GENERATE_DATAPLANE_TOKEN" is a token action: a rule that lists types never covers it'],
      ],
      [
        'a token without mesh in a rule that sets mesh',
        universal([
          { mesh: 'demo', access: ['GENERATE_DATAPLANE_TOKEN', 'GENERATE_USER_TOKEN', 'GENERATE_ZONE_TOKEN'] },
        ]),
        [
          'rules[0].access[1]: "GENERATE_USER_TOKEN" has no mesh: a rule that sets mesh never covers it',
          'rules[0].access[2]: "GENERATE_ZONE_TOKEN" has no mesh: a rule that sets mesh never covers it',
        ],
      ],
      [
        'a namespace on the Kubernetes form',
        kubernetes({ rules: [{ accessAll: true }] }, { name: 'a', namespace: 'kuma-system' }),
        ['metadata.namespace: ignored: an AccessAudit is global-scoped (cluster-scoped on Kubernetes)'],
      ],
    ];
    for (const [name, doc, expected] of table) {
      it(`warns about ${name}`, () => {
        const res = parseAccessAudit(doc, opts);
        expect(res.violations.map(show)).to.deep.equal([]);
        expect(res.warnings.map(show)).to.deep.equal(expected);
        expect(res.audit).to.not.equal(undefined);
      });
    }

    it('keeps an audit with no rules as one that covers nothing', () => {
      expect(parseAccessAudit({ type: 'AccessAudit', name: 'empty' }, opts).audit).to.deep.equal({
        name: 'empty',
        rules: [],
      });
    });

    it('gives no warning for a well-formed rule', () => {
      const res = parseAccessAudit(
        universal([{ types: ['Mesh'], mesh: 'default', access: ['CREATE'] }, { accessAll: true }]),
        opts,
      );
      expect(res.warnings).to.deep.equal([]);
    });
  });

  describe('validateAccessAudit (typed input)', () => {
    const rule = { types: [] as string[], mesh: '', access: [] as never[], accessAll: true };

    it('accepts a valid audit and deduplicates its lists', () => {
      const audit = {
        name: 'typed',
        rules: [{ ...rule, types: ['Mesh', 'Mesh'], accessAll: false, access: ['CREATE', 'CREATE'] }],
      } as unknown as AccessAudit;
      const res = validateAccessAudit(audit, opts);
      expect(res.violations).to.deep.equal([]);
      expect(res.audit).to.deep.equal({
        name: 'typed',
        rules: [{ types: ['Mesh'], mesh: '', access: ['CREATE'], accessAll: false }],
      });
    });

    it('reports the same messages at rules[i] paths', () => {
      const audit = {
        name: 'Typed',
        rules: [rule, { ...rule, types: ['TrafficPermision'], access: ['CREAT'], accessAll: false }],
      } as unknown as AccessAudit;
      const res = validateAccessAudit(audit, opts);
      expect(res.violations.map(show)).to.deep.equal([
        `name: "Typed" is not a lowercase RFC 1123 subdomain: ${NAME_RULE}`,
        'rules[1].types[0]: unknown type "TrafficPermision", did you mean "TrafficPermission"?',
        'rules[1].access[0]: unknown action "CREAT", did you mean "CREATE"?',
      ]);
      expect(res.audit).to.equal(undefined);
    });

    it('warns like the parser does', () => {
      const res = validateAccessAudit({ name: 'typed', rules: [{ ...rule, accessAll: false }] }, opts);
      expect(res.warnings.map(show)).to.deep.equal(['rules[0]: covers no action: set access or accessAll']);
    });

    it('ignores properties of its own that the typed object carries', () => {
      const audit = { name: 'typed', rules: [{ ...rule, source: 'grpc' }], version: 3 } as unknown as AccessAudit;
      expect(validateAccessAudit(audit, opts).violations).to.deep.equal([]);
    });

    it('rejects something that is not an object', () => {
      const res = validateAccessAudit(null as unknown as AccessAudit, opts);
      expect(res.violations.map(show)).to.deep.equal(['must be an AccessAudit, got null']);
    });
  });
});
