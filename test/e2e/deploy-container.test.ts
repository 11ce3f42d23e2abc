// deploy/container/Dockerfile, read as text (no docker daemon here): the image Kubernetes' runAsNonRoot accepts,
// with an init that passes the signals on. node-flags.test.ts checks the entrypoint's node flags.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');
const dockerfile = fs.readFileSync(path.join(ROOT, 'deploy/container/Dockerfile'), 'utf8');
/** The instructions of the final stage, comments and continuations folded. */
const finalStage = dockerfile
  .replace(/\\\n/g, ' ')
  .split(/^FROM /m)
  .at(-1)!
  .split('\n')
  .filter((l) => l !== '' && !l.startsWith('#'));

describe('deploy/container/Dockerfile', () => {
  it('runs on a slim Node 20 as a numeric user that is not root', () => {
    expect(finalStage[0]).to.match(/^node:20-[a-z]+-slim$/);
    const [, uid, gid] = /^USER (\d+):(\d+)$/m.exec(finalStage.join('\n')) ?? [];
    expect(Number(uid)).to.be.greaterThan(0);
    expect(Number(gid)).to.be.greaterThan(0);
    // The folders the sidecar writes are that user's (volumes mounted there take fsGroup instead).
    expect(finalStage).to.include(
      `RUN mkdir -p /var/lib/meshaudit /var/log/mesh && chown ${uid}:${gid} /var/lib/meshaudit /var/log/mesh`,
    );
  });

  it('starts node under tini, installed in the same stage', () => {
    const entrypoint: string[] = JSON.parse(/^ENTRYPOINT (.*)$/m.exec(finalStage.join('\n'))![1]);
    expect(entrypoint.slice(0, 3)).to.deep.equal(['/usr/bin/tini', '--', 'node']);
    expect(finalStage.some((l) => /^RUN apt-get update && apt-get install .*\btini\b/.test(l))).to.equal(true);
  });
});
