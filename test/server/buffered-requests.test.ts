import { EventEmitter } from 'node:events';
import type * as http2 from 'node:http2';
import { expect } from 'chai';
import { type LogFields, silentLogger } from '../../src/log';
import { BufferedRequests } from '../../src/server/buffered-requests';

/** An HTTP/2 server, its sessions and streams as far as the guard sees them: events and destroy(). */
class FakeSession extends EventEmitter {
  destroyed = false;
  readonly socket = { remoteAddress: '10.0.0.1', remotePort: 0 };

  constructor(port: number) {
    super();
    this.socket.remotePort = port;
  }

  destroy(): void {
    this.destroyed = true;
  }
}

function setUp(maxBytes: number) {
  const server = new EventEmitter();
  const warnings: Array<[string, LogFields | undefined]> = [];
  const guard = new BufferedRequests(maxBytes, {
    ...silentLogger,
    warn: (msg, fields) => void warnings.push([msg, fields]),
  });
  guard.watch(server as unknown as http2.Http2Server);
  const session = (port: number): FakeSession => {
    const s = new FakeSession(port);
    server.emit('session', s);
    return s;
  };
  const stream = (s: FakeSession): EventEmitter => {
    const st = Object.assign(new EventEmitter(), { session: s });
    server.emit('stream', st);
    return st;
  };
  return { guard, warnings, session, stream };
}

/** A gRPC message of `length` bytes announced, with its prefix. */
function message(length: number, sent = length): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(length, 1);
  return Buffer.concat([prefix, Buffer.alloc(sent, 1)]);
}

describe('BufferedRequests', () => {
  it('counts an unfinished message wherever the chunks cut it, prefix included, and nothing once it is whole', () => {
    const whole = message(20);
    for (let cut = 0; cut <= whole.length; cut++) {
      const { guard, session, stream } = setUp(1000);
      const st = stream(session(1));
      st.emit('data', whole.subarray(0, cut));
      expect(guard.heldBytes, `cut at ${cut}`).to.equal(cut === whole.length ? 0 : cut);
      st.emit('data', whole.subarray(cut));
      expect(guard.heldBytes, `cut at ${cut}, then the rest`).to.equal(0);
    }
  });

  it('follows messages back to back in one chunk, empty ones and lengths past 2^31 included', () => {
    const { guard, session, stream } = setUp(2 ** 33);
    const st = stream(session(1));
    st.emit('data', Buffer.concat([message(3), message(0), message(7), message(0xffff_fff0, 2)]));
    expect(guard.heldBytes).to.equal(7);
  });

  it('lets go of what a stream held when it closes', () => {
    const { guard, session, stream } = setUp(1000);
    const st = stream(session(1));
    st.emit('data', message(100, 50));
    expect(guard.heldBytes).to.equal(55);
    st.emit('close');
    expect(guard.heldBytes).to.equal(0);
  });

  it('closes the connection holding the most once all together pass the budget, with a warning', () => {
    const { guard, warnings, session, stream } = setUp(1000);
    const small = session(1);
    const large = session(2);
    stream(small).emit('data', message(1000, 300));
    stream(large).emit('data', message(1000, 400));
    const last = stream(large);
    last.emit('data', message(1000, 400));
    expect(large.destroyed).to.equal(true);
    expect(small.destroyed).to.equal(false);
    expect(guard.heldBytes).to.equal(305);
    expect(warnings).to.deep.equal([
      [
        'closed a connection: unfinished request messages passed meshaudit.limits.bufferedRequestBytes; it held the most',
        { peer: '10.0.0.1:2', heldBytes: 810, allHeldBytes: 1115, limit: 1000 },
      ],
    ]);
    // What the closed connection's streams do afterwards no longer counts.
    last.emit('data', Buffer.alloc(500));
    last.emit('close');
    expect(guard.heldBytes).to.equal(305);
  });
});
