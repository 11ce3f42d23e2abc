import { EventEmitter, once } from 'node:events';
import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import type { Sink, SinkPosition } from '../../src/backends/sink';
import { fieldViolationsOf } from '../../src/client/status-details';
import type { AccessAudit } from '../../src/rules';
import { AUDIT_ALL, failure, openStream, resourceEvent, samples, TestZone, unary, valid } from '../support/helpers';

/** Audits the creation of TrafficRoutes in mesh "default" (by its second rule, so that ruleIndex shows). */
const ROUTES: AccessAudit = {
  name: 'routes',
  rules: [
    { types: ['Mesh'], mesh: '', access: ['CREATE'], accessAll: false },
    { types: ['TrafficRoute'], mesh: 'default', access: ['CREATE'], accessAll: false },
  ],
};
/** Audits changes to AccessAudit resources themselves. */
const AUDIT_CHANGES: AccessAudit = {
  name: 'audit-changes',
  rules: [{ types: ['AccessAudit'], mesh: '', access: ['CREATE', 'UPDATE', 'DELETE'], accessAll: false }],
};
// A loopback caller with no credential is the admin (meshaudit.auth.localhostIsAdmin, the default).
const OPERATOR = '"user":{"name":"mesh-system:admin","groups":["mesh-system:admin"]}';
/** The user the spec names for changes that come from rules files. */
const FILES_USER = '"user":{"name":"meshaudit:rules-files","groups":["meshaudit:system"]}';

const UNIVERSAL = 'type: AccessAudit\nname: universal\nrules:\n- types: ["TrafficRoute"]\n  access: ["CREATE"]\n';
const KUBERNETES =
  'apiVersion: kuma.io/v1alpha1\nkind: AccessAudit\nmetadata:\n  name: kubernetes\nspec:\n  rules:\n  - access: ["GENERATE_DATAPLANE_TOKEN"]\n    mesh: demo\n';

/** The AccessAudit as the API answers it. */
function reply(audit: AccessAudit, version: number): unknown {
  return { ...audit, version };
}

/** A change record with its date (the time of the change) checked and replaced by D. */
function withoutDate(line: string): string {
  expect(line).to.match(/^\{"date":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",/);
  return line.replace(/^\{"date":"[^"]*"/, '{"date":D');
}

function changeRecord(action: string, name: string, user = OPERATOR): string {
  return `{"date":D,"action":"${action}","resource":{"name":"${name}","type":"AccessAudit"},${user}}`;
}

describe('RuleService over a real gRPC server', function () {
  this.timeout(10_000);
  let zone: TestZone;
  const call = <T = any>(method: string, request: unknown): Promise<T> => unary<T>(zone.clients.rules, method, request);
  const names = async (): Promise<string[]> =>
    (await call('ListAccessAudits', {})).accessAudits.map((a: AccessAudit) => a.name);

  beforeEach(async () => {
    zone = new TestZone();
    await zone.start([]);
  });
  afterEach(() => zone.stop());

  describe('resources', () => {
    it('creates, reads, updates, lists and deletes, with the version going up on every change', async () => {
      expect(await call('CreateAccessAudit', { accessAudit: ROUTES })).to.deep.equal(reply(ROUTES, 1));
      expect(await call('GetAccessAudit', { name: 'routes' })).to.deep.equal(reply(ROUTES, 1));
      const changed: AccessAudit = {
        name: 'routes',
        rules: [{ types: [], mesh: '', access: ['DELETE'], accessAll: false }],
      };
      expect(await call('UpdateAccessAudit', { accessAudit: { ...changed, version: 1 } })).to.deep.equal(
        reply(changed, 2),
      );
      await call('CreateAccessAudit', { accessAudit: AUDIT_CHANGES });
      expect(await call('ListAccessAudits', {})).to.deep.equal({
        accessAudits: [reply(AUDIT_CHANGES, 1), reply(changed, 2)],
      });
      expect(await call('DeleteAccessAudit', { name: 'routes', version: 2 })).to.deep.equal({});
      expect(await names()).to.deep.equal(['audit-changes']);
    });

    it('refuses a stale version with ABORTED naming the current version, and takes version 0 whatever it is', async () => {
      await call('CreateAccessAudit', { accessAudit: ROUTES });
      await call('UpdateAccessAudit', { accessAudit: { ...AUDIT_ALL, name: 'routes', version: 1 } });
      const message =
        'AccessAudit "routes" is at version 2, not 1: read it again and retry (version 0 changes it whatever its version)';
      for (const err of [
        await failure(call('UpdateAccessAudit', { accessAudit: { ...ROUTES, version: 1 } })),
        await failure(call('DeleteAccessAudit', { name: 'routes', version: 1 })),
      ]) {
        expect(err.code).to.equal(grpc.status.ABORTED);
        expect(err.details).to.equal(message);
      }
      expect(await call('UpdateAccessAudit', { accessAudit: ROUTES })).to.deep.equal(reply(ROUTES, 3));
      await call('DeleteAccessAudit', { name: 'routes' });
      expect(await names()).to.deep.equal([]);
    });

    it('lets one of two updates read at the same version through, and refuses the other', async () => {
      await call('CreateAccessAudit', { accessAudit: ROUTES });
      const results = await Promise.allSettled([
        call('UpdateAccessAudit', { accessAudit: { ...AUDIT_ALL, name: 'routes', version: 1 } }),
        call('UpdateAccessAudit', { accessAudit: { ...AUDIT_CHANGES, name: 'routes', version: 1 } }),
      ]);
      expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected']);
      expect((results[1] as PromiseRejectedResult).reason.code).to.equal(grpc.status.ABORTED);
      expect((await call('GetAccessAudit', { name: 'routes' })).version).to.equal(2);
    });

    it('answers NOT_FOUND and ALREADY_EXISTS naming the resource', async () => {
      await call('CreateAccessAudit', { accessAudit: ROUTES });
      const exists = await failure(call('CreateAccessAudit', { accessAudit: ROUTES }));
      expect([exists.code, exists.details]).to.deep.equal([
        grpc.status.ALREADY_EXISTS,
        'AccessAudit "routes" already exists (version 1); update it instead',
      ]);
      for (const err of [
        await failure(call('GetAccessAudit', { name: 'nope' })),
        await failure(call('UpdateAccessAudit', { accessAudit: { ...ROUTES, name: 'nope' } })),
        await failure(call('DeleteAccessAudit', { name: 'nope' })),
      ]) {
        expect([err.code, err.details]).to.deep.equal([grpc.status.NOT_FOUND, 'AccessAudit "nope" not found']);
      }
    });

    it('answers INVALID_ARGUMENT with a field violation for every problem at once, and creates nothing', async () => {
      const bad = { name: 'Routes', rules: [ROUTES.rules[0], { types: ['TrafficPermision'], access: ['CREAT'] }] };
      const err = await failure(call('CreateAccessAudit', { accessAudit: bad }));
      expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(fieldViolationsOf(err.metadata)).to.deep.equal([
        {
          field: 'accessAudit.name',
          description:
            '"Routes" is not a lowercase RFC 1123 subdomain: use lowercase letters, digits, "-" and ".", starting and ending with a letter or digit',
        },
        {
          field: 'accessAudit.rules[1].types[0]',
          description: 'unknown type "TrafficPermision", did you mean "TrafficPermission"?',
        },
        { field: 'accessAudit.rules[1].access[0]', description: 'unknown action "CREAT", did you mean "CREATE"?' },
      ]);
      expect(err.details).to.contain('accessAudit.rules[1].access[0]: unknown action "CREAT", did you mean "CREATE"?');
      expect(await names()).to.deep.equal([]);
      expect(fieldViolationsOf((await failure(call('CreateAccessAudit', {}))).metadata)).to.deep.equal([
        { field: 'accessAudit', description: 'is required' },
      ]);
      expect(fieldViolationsOf((await failure(call('GetAccessAudit', {}))).metadata)).to.deep.equal([
        { field: 'name', description: 'is required' },
      ]);
    });

    it('refuses a rule whose mesh can never match (only global-scoped types), from the API and from an apply', async () => {
      const zoneRule = { types: ['Zone'], mesh: 'default', access: ['CREATE'] };
      const err = await failure(call('CreateAccessAudit', { accessAudit: { name: 'zones', rules: [zoneRule] } }));
      expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
      const why =
        'never matches: "Zone" is global-scoped (no mesh), and a rule that sets mesh covers only mesh-scoped types and the Mesh resource itself; remove mesh, or list mesh-scoped types';
      expect(fieldViolationsOf(err.metadata)).to.deep.equal([{ field: 'accessAudit.rules[0].mesh', description: why }]);
      const yaml = 'type: AccessAudit\nname: zones\nrules:\n- types: [Zone]\n  mesh: default\n  access: [CREATE]\n';
      const applied = await failure(call('ApplyAccessAudits', { yaml }));
      expect(fieldViolationsOf(applied.metadata)).to.deep.equal([
        { field: 'yaml', description: `line 5: rules[0].mesh: ${why}` },
      ]);
      expect(await names()).to.deep.equal([]);
    });

    it('keeps the resources and their versions across a restart', async () => {
      const updated = { ...AUDIT_CHANGES, name: 'routes' };
      await call('CreateAccessAudit', { accessAudit: ROUTES });
      await call('UpdateAccessAudit', { accessAudit: updated });
      await zone.restart([]);
      expect(await call('ListAccessAudits', {})).to.deep.equal({ accessAudits: [reply(updated, 2)] });
    });
  });

  describe('ApplyAccessAudits', () => {
    it('creates from both YAML forms in one multi-document text, then reports what it updates and leaves unchanged', async () => {
      expect(await call('ApplyAccessAudits', { yaml: `${UNIVERSAL}---\n${KUBERNETES}` })).to.deep.equal({
        created: ['universal', 'kubernetes'],
        updated: [],
        unchanged: [],
        warnings: [],
      });
      expect(await call('GetAccessAudit', { name: 'kubernetes' })).to.deep.equal(
        reply(
          {
            name: 'kubernetes',
            rules: [{ types: [], mesh: 'demo', access: ['GENERATE_DATAPLANE_TOKEN'], accessAll: false }],
          },
          1,
        ),
      );
      const universal2 = UNIVERSAL.replace('["CREATE"]', '["CREATE", "DELETE"]');
      expect(await call('ApplyAccessAudits', { yaml: `${KUBERNETES}---\n${universal2}` })).to.deep.equal({
        created: [],
        updated: ['universal'],
        unchanged: ['kubernetes'],
        warnings: [],
      });
      expect((await call('GetAccessAudit', { name: 'universal' })).version).to.equal(2);
    });

    it('with dryRun reports what it would do and changes nothing', async () => {
      await call('ApplyAccessAudits', { yaml: UNIVERSAL });
      const plan = await call('ApplyAccessAudits', {
        yaml: `${UNIVERSAL.replace('CREATE', 'DELETE')}---\n${KUBERNETES}`,
        dryRun: true,
      });
      expect(plan).to.deep.include({ created: ['kubernetes'], updated: ['universal'], unchanged: [] });
      expect(await call('ListAccessAudits', {})).to.deep.equal({
        accessAudits: [
          reply(
            { name: 'universal', rules: [{ types: ['TrafficRoute'], mesh: '', access: ['CREATE'], accessAll: false }] },
            1,
          ),
        ],
      });
    });

    it('changes nothing when one document is bad, naming its line', async () => {
      const bad = 'type: AccessAudit\nname: bad\nrules:\n- access: ["CREAT"]\n';
      const err = await failure(call('ApplyAccessAudits', { yaml: `${UNIVERSAL}---\n${bad}` }));
      expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(fieldViolationsOf(err.metadata)).to.deep.equal([
        { field: 'yaml', description: 'line 10: rules[0].access[0]: unknown action "CREAT", did you mean "CREATE"?' },
      ]);
      expect(err.details).to.equal('yaml: line 10: rules[0].access[0]: unknown action "CREAT", did you mean "CREATE"?');
      expect(await names()).to.deep.equal([]);
    });

    it('refuses a name defined twice, and a text with no document', async () => {
      const twice = await failure(call('ApplyAccessAudits', { yaml: `${UNIVERSAL}---\n${UNIVERSAL}` }));
      expect(fieldViolationsOf(twice.metadata)).to.deep.equal([
        {
          field: 'yaml',
          description: 'AccessAudit "universal" is defined more than once: an apply defines each name once',
        },
      ]);
      const empty = await failure(call('ApplyAccessAudits', { yaml: '# nothing\n' }));
      expect(fieldViolationsOf(empty.metadata)).to.deep.equal([
        { field: 'yaml', description: 'no AccessAudit document: nothing to apply' },
      ]);
      expect(await names()).to.deep.equal([]);
    });

    it('answers warnings with their line for rules that are valid but cover less than they say', async () => {
      const yaml =
        'type: AccessAudit\nname: w\nrules:\n- types: ["Mesh"]\n- types: ["Mesh"]\n  access: ["GENERATE_USER_TOKEN"]\n';
      expect((await call('ApplyAccessAudits', { yaml })).warnings).to.deep.equal([
        'line 4: rules[0]: covers no action: set access or accessAll',
        'line 6: rules[1].access[0]: "GENERATE_USER_TOKEN" is a token action: a rule that lists types never covers it',
      ]);
    });

    describe('refuses hostile YAML with INVALID_ARGUMENT, quickly', () => {
      // Ten anchors of ten aliases each: 10^10 nodes once expanded, from a few hundred bytes.
      const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
      for (let i = 1; i < 10; i++) {
        const prev = String.fromCharCode(96 + i);
        bomb.push(
          `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${prev}`).join(',')}]`,
        );
      }
      const cases: Array<[string, string, string]> = [
        [
          'an alias bomb',
          `${bomb.join('\n')}\n`,
          'line 4: aliases expand to more than 10000 nodes in one document (an alias bomb?)',
        ],
        ['70-deep nesting', `name: ${'['.repeat(70)}${']'.repeat(70)}\n`, 'line 1: nesting exceeded maxDepth (64)'],
        ['2 MiB of text', `name: "${'x'.repeat(2 * 1024 * 1024)}"\n`, 'too large: more than 1048576 bytes'],
        [
          'a document that is a list',
          '- type: AccessAudit\n  name: a\n',
          'line 1: must be a mapping (an AccessAudit resource), got a list',
        ],
      ];
      for (const [name, yaml, description] of cases) {
        it(name, async () => {
          const started = Date.now();
          const err = await failure(call('ApplyAccessAudits', { yaml }));
          expect(Date.now() - started).to.be.below(2000);
          expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
          expect(fieldViolationsOf(err.metadata)).to.deep.equal([{ field: 'yaml', description }]);
        });
      }
    });
  });

  describe('rules in force', () => {
    it('applies a change to the very next event of an open stream', async () => {
      const s = openStream(zone.clients.audit);
      s.call.write({ identifier: { zone: 'zone-1', instance: 'cp-0' } });
      await s.next();
      const send = async (firstSeq: number, n: number): Promise<unknown> => {
        s.call.write({ firstSeq, events: Array.from({ length: n }, (_, i) => resourceEvent(firstSeq + i)) });
        return s.next();
      };
      expect(await send(1, 2)).to.include({ recorded: 0, skipped: 2 });
      await call('CreateAccessAudit', { accessAudit: ROUTES });
      expect(await send(3, 2)).to.include({ recorded: 2, skipped: 0 });
      await call('DeleteAccessAudit', { name: 'routes' });
      expect(await send(5, 1)).to.include({ recorded: 0, skipped: 1 });
      expect(zone.records().map((l) => JSON.parse(l).resource.name)).to.deep.equal(['route-3', 'route-4']);
      s.call.end();
      expect(await s.status).to.equal(null);
    });

    it('Evaluate names every covering rule and gives the exact record line, writing nothing', async () => {
      await zone.restart([ROUTES, AUDIT_ALL]);
      expect(await call('Evaluate', { event: resourceEvent(1) })).to.deep.equal({
        audited: true,
        matches: [
          { accessAudit: 'all', ruleIndex: 0 },
          { accessAudit: 'routes', ruleIndex: 1 },
        ],
        record:
          '{"date":"2022-09-21T09:31:42Z","action":"CREATE","resource":{"name":"route-1","mesh":"default","type":"TrafficRoute"},' +
          '"user":{"name":"cp","groups":["mesh-system:control-plane"]}}',
      });
      const insight = { ...resourceEvent(2), resource: { type: 'DataplaneInsight', name: 'dp-1', mesh: 'default' } };
      expect(await call('Evaluate', { event: insight })).to.deep.equal({ audited: false, matches: [], record: '' });
      const bad = await failure(call('Evaluate', { event: { ...resourceEvent(3), action: 'CREAT' } }));
      expect(fieldViolationsOf(bad.metadata)).to.deep.equal([
        { field: 'event.action', description: 'unknown action "CREAT", did you mean "CREATE"?' },
      ]);
      expect(fieldViolationsOf((await failure(call('Evaluate', {}))).metadata)).to.deep.equal([
        { field: 'event', description: 'is required' },
      ]);
      await zone.stop();
      expect(zone.records()).to.deep.equal([]);
      await zone.start([]);
    });

    it('counts each resource changed by the source of the change, and the resources in force after it', async () => {
      const counts = async (): Promise<Array<number | undefined>> => {
        const m = samples(await zone.sidecar.metrics.prometheus());
        return [
          m.get('meshaudit_rule_changes_total{source="api"}'),
          m.get('meshaudit_rule_changes_total{source="rules_files"}'),
          m.get('meshaudit_access_audits'),
        ];
      };
      await zone.restart([], { audits: [valid(AUDIT_ALL)] });
      expect(await counts()).to.deep.equal([0, 1, 1]);
      await call('CreateAccessAudit', { accessAudit: ROUTES });
      await call('ApplyAccessAudits', { yaml: 'type: AccessAudit\nname: dry\nrules: []\n', dryRun: true });
      expect(await counts()).to.deep.equal([1, 1, 2]);
      await call('DeleteAccessAudit', { name: ROUTES.name, version: 0 });
      await zone.sidecar.reload(zone.sidecar.config, [valid(AUDIT_ALL), valid({ ...ROUTES, name: 'from-file' })]);
      expect(await counts()).to.deep.equal([2, 2, 2]);
    });

    it('seeds the --rules files at start-up and on reload: they win for their names, API resources stay, each change recorded', async () => {
      const fromFile: AccessAudit = {
        name: 'from-file',
        rules: [{ types: [], mesh: '', access: ['CREATE'], accessAll: false }],
      };
      const files = { audits: [valid(AUDIT_ALL), valid(fromFile)] };
      await zone.restart([], files);
      await call('UpdateAccessAudit', { accessAudit: { ...fromFile, rules: [{ access: ['DELETE'] }] } });
      await call('CreateAccessAudit', { accessAudit: ROUTES });
      await zone.restart([], files);
      expect(await call('ListAccessAudits', {})).to.deep.equal({
        accessAudits: [reply(AUDIT_ALL, 1), reply(fromFile, 3), reply(ROUTES, 1)],
      });
      await zone.restart([], files); // the same files again: nothing changes, nothing is recorded
      const reloaded = { ...fromFile, rules: [{ ...fromFile.rules[0], access: ['UPDATE' as const] }] };
      expect((await zone.sidecar.reload(zone.sidecar.config, [valid(reloaded)])).rules).to.deep.equal({
        created: [],
        updated: ['from-file'],
        deleted: ['all'],
        unchanged: [],
      });
      expect(await call('ListAccessAudits', {})).to.deep.equal({
        accessAudits: [reply(reloaded, 4), reply(ROUTES, 1)],
      });
      // Every change is a record, by its source: the files' user or the operator.
      expect(zone.records().map(withoutDate)).to.deep.equal([
        changeRecord('CREATE', 'all', FILES_USER),
        changeRecord('CREATE', 'from-file', FILES_USER),
        changeRecord('UPDATE', 'from-file'),
        changeRecord('CREATE', 'routes'),
        changeRecord('UPDATE', 'from-file', FILES_USER),
        changeRecord('UPDATE', 'from-file', FILES_USER),
        changeRecord('DELETE', 'all', FILES_USER),
      ]);
    });
  });

  describe('changes are audit actions', () => {
    it('records a change when the rules before or after it cover it, with the operator as user', async () => {
      await call('CreateAccessAudit', { accessAudit: AUDIT_CHANGES }); // covered by the rules after it
      await call('CreateAccessAudit', { accessAudit: ROUTES }); // before and after
      await call('DeleteAccessAudit', { name: 'audit-changes' }); // covered by the rules before it only
      await call('UpdateAccessAudit', { accessAudit: { ...ROUTES, rules: [ROUTES.rules[1]] } }); // by none
      expect(zone.records().map(withoutDate)).to.deep.equal([
        changeRecord('CREATE', 'audit-changes'),
        changeRecord('CREATE', 'routes'),
        changeRecord('DELETE', 'audit-changes'),
      ]);
    });

    it('Apply records one action per created or updated resource, none for unchanged ones or a dry run', async () => {
      await zone.restart([AUDIT_CHANGES]);
      await call('ApplyAccessAudits', { yaml: `${UNIVERSAL}---\n${KUBERNETES}` });
      await call('ApplyAccessAudits', { yaml: `${UNIVERSAL.replace('CREATE', 'DELETE')}---\n${KUBERNETES}` });
      await call('ApplyAccessAudits', { yaml: UNIVERSAL, dryRun: true });
      expect(zone.records().map(withoutDate)).to.deep.equal([
        changeRecord('CREATE', 'universal'),
        changeRecord('CREATE', 'kubernetes'),
        changeRecord('UPDATE', 'universal'),
      ]);
    });

    it('refuses a change with UNAVAILABLE when its record cannot be written, and changes nothing', async () => {
      const disk = new BrokenDisk();
      await zone.restart([AUDIT_CHANGES], { sinks: [disk], config: { drainTimeoutMs: 100 } });
      const attempted = once(disk, 'attempt');
      const refused = failure(call('CreateAccessAudit', { accessAudit: ROUTES }));
      await attempted; // the change's record reached the disk, which failed it
      // The writer retries a failing disk until it stops: stopping is what gives the change up.
      const stopped = zone.sidecar.stop();
      const err = await refused;
      expect([err.code, err.details]).to.deep.equal([
        grpc.status.UNAVAILABLE,
        'the audit record of this change could not be written, so nothing was changed; retry later',
      ]);
      await stopped;
      await zone.restart([AUDIT_CHANGES]);
      expect(await names()).to.deep.equal(['audit-changes']);
    });
  });
});

/** A disk on which every write fails. */
class BrokenDisk extends EventEmitter implements Sink {
  readonly key = 'broken';
  open(): Promise<SinkPosition> {
    return Promise.resolve({ ino: 1, size: 0 });
  }
  write(): Promise<SinkPosition> {
    this.emit('attempt');
    return Promise.reject(new Error('EIO: i/o error, write'));
  }
  reopen(): Promise<SinkPosition> {
    return Promise.resolve({ ino: 1, size: 0 });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
