// The client as a control plane written in TypeScript gets it: from the packed tarball, through the
// package's `exports` map, with its type declarations. npm cannot install the tarball's dependencies
// offline, so the temp project links the checkout's own (as an install would put them beside it).
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { Sidecar } from '../../src/cli/sidecar';
import { readRecords, startTestSidecar, tempDir, testConfig } from '../support/helpers';

const ROOT = path.resolve(__dirname, '../../..');
const run = promisify(execFile);

/** What a control plane writes: ten lines, as the README shows them. */
const APP = `import { AuditClient, RejectedEventError, type SendResult } from 'meshaudit/client';

async function main(): Promise<void> {
  const client = new AuditClient({ address: process.argv[2], identifier: { zone: 'zone-1', instance: 'cp-0' } });
  const event = { resource: { type: 'Mesh', name: 'demo', mesh: 'demo' }, user: { name: 'admin', groups: [] } };
  const ok: SendResult = await client.send({ ...event, action: 'CREATE' });
  const bad = await client.send({ ...event, action: 'CREAT' }).catch((e) => e);
  await client.close();
  console.log(JSON.stringify({ ok, rejected: bad instanceof RejectedEventError ? bad.reason : String(bad) }));
}
void main();
`;

describe('the package, as a control plane imports it', function () {
  this.timeout(60_000);
  let sidecar: Sidecar;

  before(async () => {
    sidecar = await startTestSidecar(testConfig(tempDir(), { zone: 'zone-1' }));
  });
  after(() => sidecar.stop());

  it('packs dist/src with the client declarations, and a TypeScript app type-checks and streams through meshaudit/client', async () => {
    const dir = tempDir('meshaudit-pack-');
    await run('npm', ['pack', '--pack-destination', dir], { cwd: ROOT });
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    const app = path.join(dir, 'app');
    const installed = path.join(app, 'node_modules', 'meshaudit');
    fs.mkdirSync(installed, { recursive: true });
    await run('tar', ['-xzf', path.join(dir, `meshaudit-${pkg.version}.tgz`), '--strip-components=1', '-C', installed]);
    expect(fs.existsSync(path.join(installed, 'dist/src/client/index.d.ts')), 'declarations packed').to.equal(true);
    expect(fs.existsSync(path.join(installed, 'dist/test')), 'tests not packed').to.equal(false);
    for (const dep of [...Object.keys(pkg.dependencies), '@types/node', 'typescript']) {
      fs.mkdirSync(path.dirname(path.join(app, 'node_modules', dep)), { recursive: true });
      fs.symlinkSync(path.join(ROOT, 'node_modules', dep), path.join(app, 'node_modules', dep), 'dir');
    }
    fs.writeFileSync(path.join(app, 'package.json'), '{"name": "cp", "private": true}\n');
    fs.writeFileSync(path.join(app, 'cp.ts'), APP);
    // The README's example type-checks too (an ES module, for its top-level await).
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const example = /```ts\n(import \{ AuditClient[\s\S]*?)```/.exec(readme);
    expect(example, "README's AuditClient example").to.not.equal(null);
    fs.writeFileSync(path.join(app, 'readme.mts'), `${example![1]}export {};\n`);
    fs.writeFileSync(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'node16',
          moduleResolution: 'node16',
          target: 'ES2022',
          strict: true,
          types: ['node'],
        },
        files: ['cp.ts', 'readme.mts'],
      }),
    );
    // node16 resolution reads the `exports` map and its `types` condition, as a user's project does.
    await run(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', app], { cwd: app }).catch(
      (e) => {
        throw new Error(`the app does not type-check: ${e.stdout}${e.stderr}`);
      },
    );
    const { stdout } = await run(process.execPath, ['cp.js', `127.0.0.1:${sidecar.port}`], { cwd: app });
    expect(JSON.parse(stdout)).to.deep.equal({
      ok: { seq: 1, outcome: 'recorded' },
      rejected: 'action: unknown action "CREAT", did you mean "CREATE"?',
    });
    expect(readRecords(sidecar.config.backends[0].path).length).to.equal(1);
    // Only the client is exported: the sidecar's insides are not an API.
    const deep = await run(process.execPath, ['-e', "require('meshaudit/dist/src/cli/sidecar.js')"], {
      cwd: app,
    }).catch((e) => e);
    expect(deep.stderr).to.include('ERR_PACKAGE_PATH_NOT_EXPORTED');
  });
});
