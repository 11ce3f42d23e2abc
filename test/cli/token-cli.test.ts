import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { indexTokens, tokenPrincipal } from '../../src/auth/tokens';
import { readTokensFile } from '../../src/config/tokens-file';
import { runTokenCommand } from '../../src/cli/token-cli';
import { tempDir } from '../support/helpers';
import { MAIN } from '../support/process';

function token(...argv: string[]): { code: number; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const code = runTokenCommand(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

describe('meshaudit token', () => {
  it('adds a token, prints it once, keeps only its hash; lists and revokes it', () => {
    const file = path.join(tempDir(), 'tokens.yaml');
    const added = token(
      'add',
      'zone-1-cp',
      '--groups',
      'mesh-system:control-plane',
      '--zones',
      'zone-1',
      '--file',
      file,
    );
    expect(added.code).to.equal(0);
    expect(added.out).to.have.length(1);
    const secret = added.out[0];
    expect(fs.readFileSync(file, 'utf8')).to.not.include(secret);
    expect(tokenPrincipal(indexTokens(readTokensFile(file)), secret)).to.deep.equal({
      name: 'zone-1-cp',
      groups: ['mesh-system:control-plane'],
      zones: ['zone-1'],
      via: 'token',
    });
    expect(added.err.join('\n')).to.include('shown this once');
    expect(token('add', 'ci', '--groups', 'mesh-system:admin', '--file', file).code).to.equal(0);

    const listed = token('list', '--file', file);
    expect(listed.out.map((l) => l.split('\t').slice(0, 3).join(' '))).to.deep.equal([
      'zone-1-cp groups=mesh-system:control-plane zones=zone-1',
      'ci groups=mesh-system:admin zones=*',
    ]);
    expect(listed.out.join('\n')).to.not.include(secret);

    expect(token('revoke', 'zone-1-cp', '--file', file).code).to.equal(0);
    expect(tokenPrincipal(indexTokens(readTokensFile(file)), secret)).to.equal(undefined);
    expect(readTokensFile(file).map((e) => e.name)).to.deep.equal(['ci']);
  });

  it('refuses what it cannot do, naming it, with exit code 2 and the file unchanged', () => {
    const file = path.join(tempDir(), 'tokens.yaml');
    token('add', 'ci', '--groups', 'g', '--file', file);
    const before = fs.readFileSync(file, 'utf8');
    for (const [argv, says] of [
      [['add', 'ci', '--groups', 'g', '--file', file], 'a token named "ci" exists'],
      [['add', 'x', '--file', file], 'add: needs --groups'],
      [['add', 'bad name', '--groups', 'g', '--file', file], 'tokens[1].name: must be a name'],
      [['add', 'y', '--groups', 'a,,b', '--file', file], '--groups: an empty name'],
      [['revoke', 'nobody', '--file', file], 'no token named "nobody"'],
      [['list'], '--file: needs the tokens file'],
      [['remove', 'ci', '--file', file], 'unknown command "remove"'],
      [['list', '--file', file, '--colour'], 'unknown flag "--colour"'],
      [[], 'needs a command'],
    ] as const) {
      const r = token(...argv);
      expect(r.code, argv.join(' ')).to.equal(2);
      expect(r.err.join('\n'), argv.join(' ')).to.include(says);
    }
    expect(fs.readFileSync(file, 'utf8')).to.equal(before);
  });

  it('writes the file with mode 0600 whatever the umask, through the built command', () => {
    const dir = tempDir();
    const file = path.join(dir, 'tokens.yaml');
    const r = spawnSync(
      'sh',
      [
        '-c',
        'umask 0000 && exec "$0" "$@"',
        process.execPath,
        MAIN,
        'token',
        'add',
        'ci',
        '--groups',
        'g',
        '--file',
        file,
      ],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.match(/^mat_[A-Za-z0-9_-]{43}$/);
    expect(fs.statSync(file).mode & 0o777).to.equal(0o600);
    expect(fs.readdirSync(dir)).to.deep.equal(['tokens.yaml']);
  });
});
