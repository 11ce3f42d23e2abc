import { expect } from 'chai';
import { YamlError, parseYamlDocuments } from '../../src/config/yaml';

/** The error parseYamlDocuments throws for `text`, or a failed assertion when it throws none. */
function yamlError(text: string, opts: Parameters<typeof parseYamlDocuments>[1] = {}): YamlError {
  try {
    parseYamlDocuments(text, opts);
  } catch (err) {
    expect(err).to.be.instanceOf(YamlError);
    return err as YamlError;
  }
  expect.fail('expected a YamlError');
}

/** Runs `fn` and returns how long it took, in milliseconds. */
function timed(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** The classic "billion laughs": nine levels of nine aliases each, 9^9 strings once expanded. */
function billionLaughs(): string {
  const names = 'abcdefghi';
  let text = `a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n`;
  for (let i = 1; i < names.length; i++) {
    const alias = `*${names[i - 1]}`;
    text += `${names[i]}: &${names[i]} [${Array(9).fill(alias).join(', ')}]\n`;
  }
  return text;
}

const CONFIG = `# the sidecar's config
kmesh:
  access:
    audit:
      skipDefaultTypes: [Mesh, "ZoneInsight"]
      backends:
      - type: file
        file:
          path: /var/log/mesh/audit.log
          rotation: &rotation
            enabled: true
            maxSizeMb: 100
      - type: file
        file:
          path: /var/log/mesh/copy.log
          rotation: *rotation
labels:
  kuma.io/service: web
  kuma.io: short
`;

describe('parseYamlDocuments', () => {
  it('returns the documents as plain values', () => {
    const { docs } = parseYamlDocuments('a: 1\nb: [x, "y"]\nc: {d: true, e: ~}\n');
    expect(docs).to.deep.equal([{ a: 1, b: ['x', 'y'], c: { d: true, e: null } }]);
  });

  it('resolves scalars by the YAML 1.2 core schema', () => {
    const { docs } = parseYamlDocuments('yes: yes\nhex: 0x10\ndate: 2024-01-01\nnan: .nan\n');
    expect(docs[0]).to.deep.equal({ yes: 'yes', hex: 16, date: '2024-01-01', nan: NaN });
  });

  describe('lineOf', () => {
    const parsed = parseYamlDocuments(CONFIG, { filename: 'config.yaml' });
    const cases: Array<[path: string, line: number | undefined]> = [
      ['', 2],
      ['kmesh', 2],
      ['kmesh.access.audit', 4],
      ['kmesh.access.audit.skipDefaultTypes', 5],
      ['kmesh.access.audit.skipDefaultTypes[1]', 5],
      ['kmesh.access.audit.backends', 6],
      ['kmesh.access.audit.backends[0]', 7],
      ['kmesh.access.audit.backends[0].type', 7],
      ['kmesh.access.audit.backends[0].file.path', 9],
      ['kmesh.access.audit.backends[0].file.rotation.maxSizeMb', 12],
      ['kmesh.access.audit.backends[1]', 13],
      ['kmesh.access.audit.backends[1].file.path', 15],
      // The key that holds the alias, and below it the anchored node's own lines.
      ['kmesh.access.audit.backends[1].file.rotation', 16],
      ['kmesh.access.audit.backends[1].file.rotation.maxSizeMb', 12],
      // Keys that contain dots.
      ['labels.kuma.io/service', 18],
      ['labels.kuma.io', 19],
      // No such field.
      ['kmesh.access.audit.backends[2]', undefined],
      ['kmesh.access.audit.backends[0].file.path.deeper', undefined],
      ['kmesh.access.audit.backends.0', undefined],
      ['kmesh.acces', undefined],
      ['labels.kuma', undefined],
    ];
    for (const [path, line] of cases) {
      it(`gives ${line === undefined ? 'no line' : `line ${line}`} for ${JSON.stringify(path)}`, () => {
        expect(parsed.lineOf(0, path)).to.equal(line);
      });
    }

    it('gives no line for a document index out of range', () => {
      expect(parsed.lineOf(1, '')).to.equal(undefined);
      expect(parsed.lineOf(-1, '')).to.equal(undefined);
    });

    it('stays fast on keys crafted so that many splits of a path match', () => {
      // Every level holds keys "a", "a.a", "a.a.a" and "a.a.a.a", all aliases of the level below: a
      // path of 60 "a"s splits into millions of key sequences, and a search without memory tries them all.
      const levels = 20;
      let text = 'l0: &l0 {leaf: 1}\n';
      for (let i = 1; i <= levels; i++) {
        const keys = ['a', 'a.a', 'a.a.a', 'a.a.a.a'].map((k) => `"${k}": *l${i - 1}`);
        text += `l${i}: &l${i} {${keys.join(', ')}}\n`;
      }
      const { lineOf } = parseYamlDocuments(text, { maxAliases: -1, maxAliasNodes: Infinity });
      expect(lineOf(0, `l${levels}.${Array(levels).fill('a').join('.')}.leaf`)).to.equal(1);
      const path = `l${levels}.${Array(60).fill('a').join('.')}.zzz`;
      expect(timed(() => expect(lineOf(0, path)).to.equal(undefined))).to.be.below(500);
    });
  });

  it('keeps multi-document text apart, drops empty documents and maps lines of each', () => {
    const text = [
      'a: 1',
      '---',
      '---',
      '# nothing',
      '---',
      'type: AccessAudit',
      'name: second',
      'rules:',
      '- access: [CREATE]',
      '---',
      '',
    ].join('\n');
    const parsed = parseYamlDocuments(text, { filename: 'audit.yaml' });
    expect(parsed.docs).to.deep.equal([
      { a: 1 },
      { type: 'AccessAudit', name: 'second', rules: [{ access: ['CREATE'] }] },
    ]);
    expect(parsed.lineOf(0, 'a')).to.equal(1);
    expect(parsed.lineOf(1, 'name')).to.equal(7);
    expect(parsed.lineOf(1, 'rules[0].access[0]')).to.equal(9);
    expect(parsed.lineOf(1, 'a')).to.equal(undefined);
  });

  it('keeps a document that is an explicit null: it is not empty', () => {
    expect(parseYamlDocuments('---\n~\n---\n').docs).to.deep.equal([null]);
  });

  it('returns no documents for empty text', () => {
    expect(parseYamlDocuments('').docs).to.deep.equal([]);
    expect(parseYamlDocuments('# only a comment\n').docs).to.deep.equal([]);
  });

  it('accepts up to maxAliases aliases in a document', () => {
    const { docs } = parseYamlDocuments(`a: &a 1\nb: [${Array(100).fill('*a').join(', ')}]\n`);
    expect((docs[0] as { b: number[] }).b).to.have.length(100);
  });

  it('counts aliases per document, not per text', () => {
    const doc = `a: &a 1\nb: [${Array(60).fill('*a').join(', ')}]\n`;
    expect(parseYamlDocuments(`${doc}---\n${doc}`).docs).to.have.length(2);
  });

  describe('rejects', () => {
    const cases: Array<{
      name: string;
      text: string;
      opts?: Parameters<typeof parseYamlDocuments>[1];
      message: string;
    }> = [
      {
        name: 'bad indentation, with the file and the line',
        text: 'a: 1\nb:\n  c: 1\n d: 2\n',
        message: 'audit.yaml:4: bad indentation of a mapping entry',
      },
      {
        name: 'a tab in indentation',
        text: 'a:\n\tb: 1\n',
        message: 'audit.yaml:2: tab characters must not be used in indentation',
      },
      { name: 'a duplicate key', text: 'a: 1\nb: 2\na: 3\n', message: 'audit.yaml:3: duplicated mapping key' },
      {
        name: 'a tag it does not know',
        text: 'a: !!js/function "x"\n',
        message: 'audit.yaml:1: unknown scalar tag !<tag:yaml.org,2002:js/function>',
      },
      {
        name: 'a collection as a key',
        text: 'a: 1\n? [x, y]\n: 1\n',
        message: 'audit.yaml:2: a mapping key must be a scalar, not a collection',
      },
      { name: 'an alias to no anchor', text: 'a: 1\nb: *nowhere\n', message: 'audit.yaml:2: unknown alias *nowhere' },
      {
        name: 'an alias inside its own anchor (a cycle)',
        text: 'a: &loop\n  b: 1\n  c: *loop\n',
        message: 'audit.yaml:3: alias *loop refers to a node that contains it (a cycle)',
      },
      {
        name: 'more than maxAliases aliases in one document',
        text: `a: &a 1\nb: [${Array(101).fill('*a').join(', ')}]\n`,
        message: 'audit.yaml:2: too many aliases: more than 100 in one document',
      },
      {
        name: 'any alias when maxAliases is 0',
        text: 'a: &a 1\nb: *a\n',
        opts: { maxAliases: 0 },
        message: 'audit.yaml:2: too many aliases: more than 0 in one document',
      },
      {
        name: 'nesting deeper than maxDepth',
        text: 'a:\n  b:\n    c: [1]\n',
        opts: { maxDepth: 4 },
        message: 'audit.yaml:3: nesting exceeded maxDepth (4)',
      },
      {
        name: 'nesting deeper than maxDepth through an alias',
        text: 'a: &deep [[1]]\nb:\n  c:\n    d: *deep\n',
        opts: { maxDepth: 5 },
        message: 'audit.yaml:4: nesting through alias *deep exceeded maxDepth (5)',
      },
      {
        name: 'text larger than maxBytes, counting UTF-8 bytes rather than characters',
        text: `a: "${'é'.repeat(10)}"\n`,
        opts: { maxBytes: 20 },
        message: 'audit.yaml: too large: more than 20 bytes',
      },
    ];
    for (const { name, text, opts, message } of cases) {
      it(name, () => {
        const err = yamlError(text, { filename: 'audit.yaml', ...opts });
        expect(err.message).to.equal(message);
      });
    }

    it('an alias bomb, fast, although it holds fewer aliases than maxAliases', () => {
      let err: YamlError | undefined;
      const ms = timed(() => {
        err = yamlError(billionLaughs(), { filename: 'bomb.yaml' });
      });
      expect(err?.message).to.equal(
        'bomb.yaml:5: aliases expand to more than 10000 nodes in one document (an alias bomb?)',
      );
      expect(ms).to.be.below(200);
    });

    it('deep nesting by default, fast', () => {
      const text = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
      let err: YamlError | undefined;
      const ms = timed(() => {
        err = yamlError(text, { filename: 'deep.yaml' });
      });
      expect(err?.message).to.equal('deep.yaml:1: nesting exceeded maxDepth (64)');
      expect(ms).to.be.below(200);
    });

    it('62 nested collections around a scalar are accepted by default, 63 are not', () => {
      expect(parseYamlDocuments(`${'['.repeat(62)}1${']'.repeat(62)}`).docs).to.have.length(1);
      expect(yamlError(`${'['.repeat(63)}1${']'.repeat(63)}`).message).to.equal(
        '<input>:1: nesting exceeded maxDepth (64)',
      );
    });

    it('oversize input by default, before parsing any of it', () => {
      const text = `a: "${'x'.repeat(16 * 1024 * 1024)}`; // unterminated: parsing it would fail differently
      let err: YamlError | undefined;
      const ms = timed(() => {
        err = yamlError(text, { filename: 'big.yaml' });
      });
      expect(err?.message).to.equal('big.yaml: too large: more than 1048576 bytes');
      expect(err?.line).to.equal(undefined);
      expect(ms).to.be.below(200);
    });

    it('names the input <input> when no filename is given, and exposes line and reason', () => {
      const err = yamlError('a: [1,\n');
      expect(err.filename).to.equal('<input>');
      expect(err.message).to.match(/^<input>:\d+: /);
      expect(err.reason).to.equal(err.message.replace(/^<input>:\d+: /, ''));
    });
  });
});
