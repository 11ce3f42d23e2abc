// The violations toolkit: the paths, the words and the printing every validator shares.
import { expect } from 'chai';
import {
  byLine,
  entry,
  field,
  formatViolation,
  formatWithin,
  index,
  InvalidArgumentError,
  mustBe,
  parentOf,
  quote,
  show,
  under,
  unknown,
  Violations,
} from '../../src/validators';

describe('the violations toolkit', () => {
  it('builds paths: plain keys with dots, other keys and map entries quoted, list items indexed', () => {
    expect(field('', 'rules')).to.equal('rules');
    expect(field('rules[0]', 'accessAll')).to.equal('rules[0].accessAll');
    expect(field('claims', 'kuma.io/service')).to.equal('claims["kuma.io/service"]');
    expect(entry('tags', 'team')).to.equal('tags["team"]');
    expect(index('rules', 2)).to.equal('rules[2]');
    expect(under('accessAudit', 'rules[0]')).to.equal('accessAudit.rules[0]');
    expect(under('accessAudit', '')).to.equal('accessAudit');
    expect(under('', 'name')).to.equal('name');
    expect(under('tags', '["a"]')).to.equal('tags["a"]');
    expect([parentOf('a.b[2]'), parentOf('a.b'), parentOf('a')]).to.deep.equal(['a.b', 'a', '']);
  });

  it('quotes a value back cut at 64 characters, and shows any YAML value as the operator wrote it', () => {
    expect(quote('x'.repeat(64))).to.equal(`"${'x'.repeat(64)}"`);
    expect(quote('x'.repeat(65))).to.equal(`"${'x'.repeat(64)}..."`);
    expect([show(undefined), show(null), show('a"b'), show(1.5), show(Number.NaN), show(-Infinity)]).to.deep.equal([
      'nothing',
      'null',
      '"a\\"b"',
      '1.5',
      '.nan',
      '-.inf',
    ]);
    expect([show([]), show([1]), show({}), show({}, 'an object'), show(new Date(0)), show(true)]).to.deep.equal([
      'an empty list',
      'a list',
      'a mapping',
      'an object',
      'a timestamp',
      'true',
    ]);
    expect(mustBe('a string', 3)).to.equal('must be a string, got 3');
    expect(unknown('action', 'CREAT', ['CREATE', 'DELETE'])).to.equal('unknown action "CREAT", did you mean "CREATE"?');
    expect(unknown('action', 'NOPE', ['CREATE'])).to.equal('unknown action "NOPE"');
  });

  it('collects violations with the line of the field, or of the nearest field that has one', () => {
    const lines: Record<string, number> = { '': 1, rules: 3, 'rules[0]': 4 };
    const v = new Violations({ source: 'rules.yaml', lineOf: (f) => lines[f] });
    v.add('rules[0].access', 'is required');
    v.add('', 'must hold one document');
    v.addAll([{ field: 'name', description: 'is required' }], 'metadata');
    expect(v.list).to.deep.equal([
      { field: 'rules[0].access', description: 'is required', source: 'rules.yaml', line: 4 },
      { field: '', description: 'must hold one document', source: 'rules.yaml', line: 1 },
      { field: 'metadata.name', description: 'is required' },
    ]);
    expect(() => v.throwIfAny()).to.throw(InvalidArgumentError);
    expect(() => new Violations().throwIfAny()).to.not.throw();
  });

  it('prints a violation for a start-up message, within a request field, and sorts by line, stably', () => {
    const at = { field: 'rules[0].access[0]', description: 'unknown action "CREAT"', source: 'a.yaml', line: 5 };
    expect(formatViolation(at)).to.equal('a.yaml:5: rules[0].access[0]: unknown action "CREAT"');
    expect(formatWithin(at)).to.equal('line 5: rules[0].access[0]: unknown action "CREAT"');
    expect(formatViolation({ field: '', description: 'too large', source: 'a.yaml' })).to.equal('a.yaml: too large');
    expect(formatWithin({ field: 'name', description: 'is required' })).to.equal('name: is required');
    const sorted = byLine([
      { field: 'c', description: '', line: 9 },
      { field: 'none', description: '' },
      { field: 'a', description: '', line: 2 },
      { field: 'b', description: '', line: 2 },
    ]);
    expect(sorted.map((v) => v.field)).to.deep.equal(['a', 'b', 'c', 'none']);
  });
});
