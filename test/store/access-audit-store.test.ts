import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AccessAuditStore, ACCESS_AUDITS_FILE, type StoreFs } from '../../src/store/access-audit-store';
import { AlreadyExistsError, NotFoundError, StaleVersionError, StoreError } from '../../src/store/errors';
import { InvalidArgumentError } from '../../src/validators';
import { type AccessAudit, type Action, typeRegistry } from '../../src/rules';
import { tempDir, valid } from '../support/helpers';

const KNOWN = typeRegistry();

function audit(name: string, access: Action[] = ['CREATE'], types: string[] = [], mesh = ''): AccessAudit {
  return { name, rules: [{ types, mesh, access, accessAll: false }] };
}

function open(dir: string, fsImpl?: StoreFs): AccessAuditStore {
  const store = new AccessAuditStore(dir, { knownTypes: KNOWN, fs: fsImpl });
  store.load();
  return store;
}

function summary(store: AccessAuditStore): Array<[string, number, string]> {
  return store.list().map((a) => [a.name, a.version, a.origin]);
}

/** Throws what `fn` throws, so that the assertion can look at its type and fields. */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('did not throw');
}

describe('AccessAudit store', () => {
  let dir: string;
  let store: AccessAuditStore;
  beforeEach(() => {
    dir = tempDir();
    store = open(dir);
  });

  it('creates at version 1, reads, and lists by name', () => {
    store.commit(store.prepareCreate(audit('b')));
    store.commit(store.prepareCreate(audit('a')));
    expect(summary(store)).to.deep.equal([
      ['a', 1, 'api'],
      ['b', 1, 'api'],
    ]);
    expect(store.get('a')).to.deep.include({
      name: 'a',
      version: 1,
      rules: [{ types: [], mesh: '', access: ['CREATE'], accessAll: false }],
    });
  });

  it('changes nothing until a prepared change is committed', () => {
    const change = store.prepareCreate(audit('a'));
    expect(change.changes).to.deep.equal([{ action: 'CREATE', name: 'a' }]);
    expect(change.after.map((a) => a.name)).to.deep.equal(['a']);
    expect(store.list()).to.deep.equal([]);
    expect(fs.existsSync(store.file)).to.equal(false);
  });

  it('refuses to commit a change prepared against a state that has moved on', () => {
    const first = store.prepareCreate(audit('a'));
    const second = store.prepareCreate(audit('b'));
    store.commit(first);
    expect(() => store.commit(second)).to.throw('the AccessAudit store changed between prepare and commit');
    expect(summary(store)).to.deep.equal([['a', 1, 'api']]);
  });

  it('bumps the version on each update, and keeps it when the rules are the same', () => {
    store.commit(store.prepareCreate(audit('a')));
    store.commit(store.prepareUpdate(audit('a', ['DELETE']), 1));
    const same = store.prepareUpdate(audit('a', ['DELETE']), 2);
    expect(same.changes).to.deep.equal([]);
    expect(same.resource?.version).to.equal(2);
    store.commit(same);
    expect(store.get('a').version).to.equal(2);
  });

  it('refuses a stale version naming the current one; version 0 updates and deletes whatever the version', () => {
    store.commit(store.prepareCreate(audit('a')));
    store.commit(store.prepareUpdate(audit('a', ['UPDATE']), 1));
    const stale = thrown(() => store.prepareUpdate(audit('a', ['DELETE']), 1));
    expect(stale).to.be.instanceOf(StaleVersionError);
    expect(stale.message).to.equal(
      'AccessAudit "a" is at version 2, not 1: read it again and retry (version 0 changes it whatever its version)',
    );
    expect(thrown(() => store.prepareDelete('a', 7))).to.be.instanceOf(StaleVersionError);
    store.commit(store.prepareUpdate(audit('a', ['DELETE']), 0));
    expect(store.get('a').version).to.equal(3);
    store.commit(store.prepareDelete('a', 0));
    expect(store.list()).to.deep.equal([]);
  });

  it('names the resource when it is missing or already exists', () => {
    store.commit(store.prepareCreate(audit('a')));
    expect(thrown(() => store.prepareCreate(audit('a'))))
      .to.be.instanceOf(AlreadyExistsError)
      .with.property('message', 'AccessAudit "a" already exists (version 1); update it instead');
    for (const fn of [
      () => store.get('x'),
      () => store.prepareUpdate(audit('x'), 0),
      () => store.prepareDelete('x', 0),
    ]) {
      expect(thrown(fn)).to.be.instanceOf(NotFoundError).with.property('message', 'AccessAudit "x" not found');
    }
  });

  it('returns every violation of a resource at once', () => {
    const bad = {
      name: 'Bad_Name',
      rules: [{ types: ['TrafficPermision'], mesh: '', access: ['CREAT'], accessAll: false }],
    } as unknown as AccessAudit;
    const err = thrown(() => store.prepareCreate(bad));
    expect(err).to.be.instanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).violations.map((v) => v.field)).to.deep.equal([
      'name',
      'rules[0].types[0]',
      'rules[0].access[0]',
    ]);
    expect((err as InvalidArgumentError).violations[2].description).to.equal(
      'unknown action "CREAT", did you mean "CREATE"?',
    );
    expect(thrown(() => store.get('')))
      .to.be.instanceOf(InvalidArgumentError)
      .with.property('message', 'name: is required');
  });

  it('applies all or nothing, saying what it creates, updates and leaves unchanged', () => {
    store.commit(store.prepareCreate(audit('same')));
    store.commit(store.prepareCreate(audit('changed')));
    const change = store.prepareApply([audit('new'), audit('same'), audit('changed', ['UPDATE'])].map(valid));
    expect(change.changes).to.deep.equal([
      { action: 'CREATE', name: 'new' },
      { action: 'UPDATE', name: 'changed' },
    ]);
    expect(change.unchanged).to.deep.equal(['same']);
    store.commit(change);
    expect(summary(store)).to.deep.equal([
      ['changed', 2, 'api'],
      ['new', 1, 'api'],
      ['same', 1, 'api'],
    ]);
  });

  it('seeds from the files: they win for their names, API resources stay, and what they stop defining goes', () => {
    store.commit(store.prepareSeed([audit('from-file'), audit('dropped-later')].map(valid)));
    store.commit(store.prepareCreate(audit('from-api')));
    store.commit(store.prepareUpdate(audit('from-file', ['DELETE']), 1));
    const change = store.prepareSeed([audit('from-file'), audit('from-api', ['UPDATE'])].map(valid));
    expect(change.changes).to.deep.equal([
      { action: 'UPDATE', name: 'from-file' },
      { action: 'UPDATE', name: 'from-api' },
      { action: 'DELETE', name: 'dropped-later' },
    ]);
    store.commit(change);
    expect(summary(store)).to.deep.equal([
      ['from-api', 2, 'file'],
      ['from-file', 3, 'file'],
    ]);
    store.commit(store.prepareUpdate(audit('from-api', ['DELETE']), 0));
    store.commit(store.prepareSeed([]));
    expect(summary(store)).to.deep.equal([['from-api', 3, 'api']]);
  });

  it('loads what it wrote after a restart', () => {
    store.commit(store.prepareCreate(audit('a', ['CREATE'], ['TrafficRoute'])));
    store.commit(store.prepareUpdate(audit('a', ['UPDATE'], ['TrafficRoute']), 1));
    store.commit(store.prepareSeed([valid(audit('b'))]));
    const again = open(dir);
    expect(again.list()).to.deep.equal(store.list());
    expect(JSON.parse(fs.readFileSync(path.join(dir, ACCESS_AUDITS_FILE), 'utf8'))).to.deep.equal({
      format: 1,
      accessAudits: [
        {
          name: 'a',
          version: 2,
          origin: 'api',
          rules: [{ types: ['TrafficRoute'], mesh: '', access: ['UPDATE'], accessAll: false }],
        },
        {
          name: 'b',
          version: 1,
          origin: 'file',
          rules: [{ types: [], mesh: '', access: ['CREATE'], accessAll: false }],
        },
      ],
    });
  });

  it('writes a temp file, fsyncs it, renames it over the file, then fsyncs the directory', () => {
    const calls: string[] = [];
    const fds = new Map<number, string>();
    const spy: StoreFs = {
      ...fs,
      openSync: ((p: string, flags: string) => {
        const fd = fs.openSync(p, flags);
        fds.set(fd, path.basename(p));
        calls.push(`open ${path.basename(p)}`);
        return fd;
      }) as typeof fs.openSync,
      writeFileSync: ((fd: number, data: string) => {
        calls.push(`write ${fds.get(fd)}`);
        fs.writeFileSync(fd, data);
      }) as typeof fs.writeFileSync,
      fsyncSync: (fd: number) => {
        calls.push(`fsync ${fds.get(fd)}`);
        fs.fsyncSync(fd);
      },
      renameSync: (from: fs.PathLike, to: fs.PathLike) => {
        calls.push(`rename ${path.basename(String(from))} ${path.basename(String(to))}`);
        fs.renameSync(from, to);
      },
    };
    const spied = open(dir, spy);
    spied.commit(spied.prepareCreate(audit('a')));
    const tmp = `${ACCESS_AUDITS_FILE}.tmp`;
    expect(calls).to.deep.equal([
      `open ${tmp}`,
      `write ${tmp}`,
      `fsync ${tmp}`,
      `rename ${tmp} ${ACCESS_AUDITS_FILE}`,
      `open ${path.basename(dir)}`,
      `fsync ${path.basename(dir)}`,
    ]);
  });

  it('keeps a change whose folder fsync failed after the rename, and says so through onSyncError', () => {
    const dirFds = new Set<number>();
    const failingDirSync: StoreFs = {
      ...fs,
      openSync: ((p: string, flags: string) => {
        const fd = fs.openSync(p, flags);
        if (p === dir) dirFds.add(fd);
        return fd;
      }) as typeof fs.openSync,
      fsyncSync: (fd: number) => {
        if (dirFds.has(fd)) throw new Error('EIO: i/o error, fsync');
        fs.fsyncSync(fd);
      },
    };
    const told: Error[] = [];
    const store2 = new AccessAuditStore(dir, {
      knownTypes: KNOWN,
      fs: failingDirSync,
      onSyncError: (e) => told.push(e),
    });
    store2.load();
    store2.commit(store2.prepareCreate(audit('a')));
    expect(store2.list().map((x) => x.name)).to.deep.equal(['a']);
    expect(told.map((e) => e.message)).to.deep.equal([
      `the AccessAudit store ${store.file} was changed, but its folder could not be fsynced: EIO: i/o error, fsync`,
    ]);
    expect(
      open(dir)
        .list()
        .map((x) => x.name),
    ).to.deep.equal(['a']);
  });

  it('keeps the previous state when a crash stops a change before the rename, and ignores the temp file left', () => {
    store.commit(store.prepareCreate(audit('a')));
    const crashing = open(dir, {
      ...fs,
      renameSync: () => {
        throw new Error('killed');
      },
    });
    expect(thrown(() => crashing.commit(crashing.prepareCreate(audit('b')))))
      .to.be.instanceOf(StoreError)
      .with.property('message', `can't write the AccessAudit store ${store.file}: killed`);
    expect(crashing.list().map((a) => a.name)).to.deep.equal(['a']);
    expect(fs.existsSync(`${store.file}.tmp`)).to.equal(true);
    const again = open(dir);
    expect(again.list().map((a) => a.name)).to.deep.equal(['a']);
    again.commit(again.prepareCreate(audit('c')));
    expect(
      open(dir)
        .list()
        .map((a) => a.name),
    ).to.deep.equal(['a', 'c']);
  });

  it('ignores a torn temp file left by a crash while it was written', () => {
    store.commit(store.prepareCreate(audit('a')));
    fs.writeFileSync(`${store.file}.tmp`, '{"format":1,"accessAudits":[{"name":"b","ver');
    expect(
      open(dir)
        .list()
        .map((a) => a.name),
    ).to.deep.equal(['a']);
  });

  it('stops on a corrupt file, naming it', () => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, ACCESS_AUDITS_FILE), '{"format":1,"accessAudits":[');
    expect(() => open(dir)).to.throw(
      StoreError,
      `the AccessAudit store ${path.join(dir, ACCESS_AUDITS_FILE)} is corrupt: not JSON`,
    );
    fs.writeFileSync(path.join(dir, ACCESS_AUDITS_FILE), '[]');
    expect(() => open(dir)).to.throw(
      StoreError,
      'is corrupt: not an AccessAudit store of format 1; restore it, or move it away to start with only the --rules files',
    );
  });

  it('stops on a stored resource this configuration refuses, naming the file and the field', () => {
    const withExtra = new AccessAuditStore(dir, {
      knownTypes: typeRegistry([{ name: 'MeshFancyPolicy', scope: 'mesh' }]),
    });
    withExtra.load();
    withExtra.commit(withExtra.prepareCreate(audit('a', ['CREATE'], ['MeshFancyPolicy'])));
    const err = thrown(() => open(dir));
    expect(err).to.be.instanceOf(StoreError);
    expect(err.message).to.contain(`the AccessAudit store ${store.file} holds resources this sidecar refuses`);
    expect(err.message).to.contain('accessAudits[0].rules[0].types[0]: unknown type "MeshFancyPolicy"');
  });

  it('loads a stored rule that sets mesh on global-scoped types only (written before that was refused) with a warning', () => {
    const stored = {
      format: 1,
      accessAudits: [
        {
          name: 'old',
          version: 3,
          origin: 'api',
          rules: [{ types: ['Zone'], mesh: 'default', access: ['CREATE'], accessAll: false }],
        },
      ],
    };
    fs.writeFileSync(path.join(dir, ACCESS_AUDITS_FILE), JSON.stringify(stored));
    const reopened = new AccessAuditStore(dir, { knownTypes: KNOWN });
    const warnings = reopened.load();
    expect(reopened.list().map((a) => [a.name, a.version])).to.deep.equal([['old', 3]]);
    expect(warnings.map((w) => w.field)).to.deep.equal(['accessAudits[0].rules[0].mesh']);
    expect(warnings[0].description).to.match(/^never matches: "Zone" is global-scoped/);
    // Through the API, the same rule is refused.
    expect(thrown(() => reopened.prepareCreate(audit('new', ['CREATE'], ['Zone'], 'default')))).to.be.instanceOf(
      InvalidArgumentError,
    );
  });
});
