import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tokenHash } from '../../src/auth/tokens';
import { formatTokens, parseTokens, readTokensFile } from '../../src/config/tokens-file';
import { tempDir } from '../support/helpers';

const HASH = tokenHash('mat_x');

describe('the tokens file', () => {
  it('reads back what it writes: names, groups, zones, hashes', () => {
    const entries = [
      { name: 'ci', groups: ['mesh-system:admin'], sha256: HASH },
      { name: 'zone-1-cp', groups: ['mesh-system:control-plane'], zones: ['zone-1'], sha256: tokenHash('mat_y') },
    ];
    expect(parseTokens(formatTokens(entries), 'tokens.yaml')).to.deep.equal(entries);
    expect(parseTokens(formatTokens([]), 'tokens.yaml')).to.deep.equal([]);
    expect(parseTokens('', 'tokens.yaml')).to.deep.equal([]);
  });

  it('names every problem with its line: a bad hash, a name twice, no groups, an unknown key', () => {
    const text = [
      'tokens:',
      '- name: a',
      '  groups: [g]',
      '  sha256: not-a-hash',
      '- name: a',
      '  groups: []',
      `  sha256: ${HASH}`,
      '  secret: mat_oops',
    ].join('\n');
    const message = (() => {
      try {
        parseTokens(text, 'tokens.yaml');
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    expect(message.split('\n')).to.deep.equal([
      'tokens.yaml:4: tokens[0].sha256: must be 64 lowercase hex digits, got "not-a-hash"',
      'tokens.yaml:5: tokens[1].name: "a" is there twice',
      'tokens.yaml:6: tokens[1].groups: must be a non-empty list of names, got an empty list',
      'tokens.yaml:8: tokens[1].secret: unknown field',
    ]);
  });

  it('refuses a file that group or others can read, saying how to fix it', () => {
    const file = path.join(tempDir(), 'tokens.yaml');
    fs.writeFileSync(file, formatTokens([{ name: 'ci', groups: ['g'], sha256: HASH }]), { mode: 0o640 });
    fs.chmodSync(file, 0o640);
    expect(() => readTokensFile(file)).to.throw(
      `can't read tokens file ${file}: readable by its group (mode 0640): chmod 600 ${file}`,
    );
    fs.chmodSync(file, 0o600);
    expect(readTokensFile(file)).to.have.length(1);
  });

  it('holds no tokens when the file is not there yet, only where that is allowed', () => {
    const file = path.join(tempDir(), 'none.yaml');
    expect(readTokensFile(file, { mustExist: false })).to.deep.equal([]);
    expect(() => readTokensFile(file)).to.throw(`can't read tokens file ${file}: ENOENT`);
  });
});
