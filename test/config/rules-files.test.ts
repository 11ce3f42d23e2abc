// --rules files on disk: every problem of every file at once, by file then line, with exact messages.
import { formatViolation } from '../../src/validators';
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { typeRegistry } from '../../src/rules';
import { loadAccessAuditFiles, parseAccessAuditYaml, RulesFileError } from '../../src/config/rules-files';
import { tempDir } from '../support/helpers';

const KNOWN = typeRegistry();
const NAME_RULE =
  'is not a lowercase RFC 1123 subdomain: use lowercase letters, digits, "-" and ".", starting and ending with a letter or digit';

/** Writes each file into a fresh temp directory; returns their paths in the same order. */
function files(texts: Record<string, string>): string[] {
  const dir = tempDir('meshaudit-rules-');
  return Object.entries(texts).map(([name, text]) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  });
}

/** The problems loadAccessAuditFiles reports, one message each; fails when it loads. */
function problems(paths: readonly string[]): readonly string[] {
  try {
    loadAccessAuditFiles(paths, KNOWN);
  } catch (e) {
    if (e instanceof RulesFileError) return e.violations.map(formatViolation);
    throw e;
  }
  throw new Error('the files loaded without a problem');
}

// Problems found in the order the validator checks (unknown top-level fields, then the name, then
// each rule's fields, then its lists), on lines in the reverse order.
const SCRAMBLED = [
  'type: AccessAudit', // 1
  'rules:', // 2
  '- types: ["TrafficPermision"]', // 3
  '  acess: ["CREATE"]', // 4
  'name: Bad_Name', // 5
  'mesh: default', // 6
  '',
].join('\n');

describe('rules files (--rules)', () => {
  it('reports the problems of one file by line, not in the order they are checked', () => {
    const [file] = files({ 'rules.yaml': SCRAMBLED });
    expect(problems([file])).to.deep.equal([
      `${file}:3: rules[0].types[0]: unknown type "TrafficPermision", did you mean "TrafficPermission"?`,
      `${file}:4: rules[0].acess: unknown field, did you mean "access"?`,
      `${file}:5: name: "Bad_Name" ${NAME_RULE}`,
      `${file}:6: mesh: unknown field: an AccessAudit is global-scoped, set mesh on a rule`,
    ]);
  });

  it('names the second definition of a name in one file with its line, and the first one', () => {
    const [file] = files({
      'rules.yaml': [
        'type: AccessAudit', // 1
        'name: a', // 2
        'rules:', // 3
        '- accessAll: true', // 4
        '---', // 5
        'type: AccessAudit', // 6
        'rules:', // 7
        '- access: ["DELETE"]', // 8
        'name: a', // 9
        '',
      ].join('\n'),
    });
    expect(problems([file])).to.deep.equal([`${file}:9: name: AccessAudit "a" is defined twice (first at ${file}:2)`]);
  });

  it('names a definition in another file, in either form, and every later one against the first', () => {
    const universal = 'type: AccessAudit\nname: a\nrules:\n- accessAll: true\n';
    const kubernetes =
      'apiVersion: kuma.io/v1alpha1\nkind: AccessAudit\nmetadata:\n  name: a\nspec:\n  rules:\n  - accessAll: true\n';
    const [first, second] = files({ 'a.yaml': universal, 'b.yaml': `${kubernetes}---\n${universal}` });
    expect(problems([first, second])).to.deep.equal([
      `${second}:4: metadata.name: AccessAudit "a" is defined twice (first at ${first}:2)`,
      `${second}:10: name: AccessAudit "a" is defined twice (first at ${first}:2)`,
    ]);
  });

  it('sorts a name defined twice among the other problems of its file, and checks the valid documents of a file that has problems', () => {
    const [a, b] = files({
      'a.yaml': 'type: AccessAudit\nname: shared\nrules:\n- access: ["DELETE"]\n',
      'b.yaml': [
        'type: AccessAudit', // 1
        'name: broken', // 2
        'rules:', // 3
        '- access: ["CREAT"]', // 4
        '---', // 5
        'type: AccessAudit', // 6
        'rules: []', // 7
        'name: shared', // 8
        '---', // 9
        'type: AccessAudit', // 10
        'name: other', // 11
        'rules:', // 12
        '- types: ["Mesh"]', // 13
        '  acces: ["CREATE"]', // 14
        '',
      ].join('\n'),
    });
    expect(problems([a, b])).to.deep.equal([
      `${b}:4: rules[0].access[0]: unknown action "CREAT", did you mean "CREATE"?`,
      `${b}:8: name: AccessAudit "shared" is defined twice (first at ${a}:2)`,
      `${b}:14: rules[0].acces: unknown field, did you mean "access"?`,
    ]);
  });

  it('keeps the order of the files, and names a file it cannot read where it comes', () => {
    const [first, missing, last] = files({
      'one.yaml': SCRAMBLED,
      'missing.yaml': '',
      'two.yaml': 'type: AccessAudit\nname: b\nrules:\n- access: ["VEIW_STATS"]\n',
    });
    fs.rmSync(missing);
    const reported = problems([first, missing, last]);
    expect(reported.map((p) => p.slice(0, p.indexOf(':', p.indexOf('.yaml'))))).to.deep.equal([
      first,
      first,
      first,
      first,
      `cannot read rules file ${missing}`,
      last,
    ]);
    expect(reported[4]).to.equal(
      `cannot read rules file ${missing}: ENOENT: no such file or directory, open '${missing}'`,
    );
    expect(reported[5]).to.equal(
      `${last}:4: rules[0].access[0]: unknown action "VEIW_STATS", did you mean "VIEW_STATS"?`,
    );
  });

  it('reports a file that is not valid YAML with its line, and nothing else of it', () => {
    const [file] = files({ 'rules.yaml': 'type: AccessAudit\nname: a\nrules:\n- access: ["CREAT"]\nname: b\n' });
    expect(problems([file])).to.deep.equal([`${file}:5: duplicated mapping key`]);
  });

  it('reports every problem of a file of 50,000 small documents (a RangeError overflowed the stack)', () => {
    const [file] = files({ 'rules.yaml': '---\nx: 1\n'.repeat(50_000) });
    const got = problems([file]);
    // Three each: the unknown field, and the missing type and name.
    expect(got).to.have.length(3 * 50_000);
    expect(got.slice(0, 2)).to.deep.equal([`${file}:2: x: unknown field`, `${file}:4: x: unknown field`]);
  });

  it('loads valid files, with their warnings by line', () => {
    const [a, b] = files({
      'a.yaml': 'type: AccessAudit\nname: a\nrules:\n- accessAll: true\n',
      'b.yaml': [
        'apiVersion: kuma.io/v1alpha1', // 1
        'kind: AccessAudit', // 2
        'spec:', // 3
        '  rules:', // 4
        '  - types: ["Mesh"]', // 5
        'metadata:', // 6
        '  name: b', // 7
        '  namespace: kuma-system', // 8
        '',
      ].join('\n'),
    });
    const loaded = loadAccessAuditFiles([a, b], KNOWN);
    expect({ audits: loaded.audits, warnings: loaded.warnings.map(formatViolation) }).to.deep.equal({
      audits: [
        { name: 'a', rules: [{ types: [], mesh: '', access: [], accessAll: true }] },
        { name: 'b', rules: [{ types: ['Mesh'], mesh: '', access: [], accessAll: false }] },
      ],
      warnings: [
        `${b}:5: spec.rules[0]: covers no action: set access or accessAll`,
        `${b}:8: metadata.namespace: ignored: an AccessAudit is global-scoped (cluster-scoped on Kubernetes)`,
      ],
    });
  });

  it('parseAccessAuditYaml (ApplyAccessAudits) reports by line too, and leaves a name defined twice to its caller', () => {
    const err = (() => {
      try {
        parseAccessAuditYaml(SCRAMBLED, 'yaml', KNOWN);
      } catch (e) {
        return e;
      }
    })();
    expect(err).to.be.instanceOf(RulesFileError);
    expect((err as RulesFileError).violations.map(formatViolation)).to.deep.equal([
      'yaml:3: rules[0].types[0]: unknown type "TrafficPermision", did you mean "TrafficPermission"?',
      'yaml:4: rules[0].acess: unknown field, did you mean "access"?',
      `yaml:5: name: "Bad_Name" ${NAME_RULE}`,
      'yaml:6: mesh: unknown field: an AccessAudit is global-scoped, set mesh on a rule',
    ]);
    const twice =
      'type: AccessAudit\nname: a\nrules:\n- accessAll: true\n---\ntype: AccessAudit\nname: a\nrules:\n- access: ["DELETE"]\n';
    expect(parseAccessAuditYaml(twice, 'yaml', KNOWN).audits.map((a) => a.name)).to.deep.equal(['a', 'a']);
  });
});
