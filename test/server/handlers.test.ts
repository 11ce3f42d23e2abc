// The one wrapper of unary handlers, on a real gRPC server with a real client: replies, domain errors
// mapped to their status, and anything unexpected answered INTERNAL and logged with its stack.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { jsonLogger } from '../../src/log';
import { defaultConfig } from '../../src/config';
import { Authenticator } from '../../src/server/authn';
import { unary } from '../../src/server/handlers';
import { Statuses } from '../../src/server/status';
import { NotFoundError } from '../../src/store/errors';
import { InvalidArgumentError } from '../../src/validators';

const raw = (b: Buffer): Buffer => b;
const METHOD = {
  requestStream: false,
  responseStream: false,
  requestSerialize: raw,
  requestDeserialize: raw,
  responseSerialize: raw,
  responseDeserialize: raw,
};
const DEFINITION: grpc.ServiceDefinition = {
  Sync: { path: '/test.Handlers/Sync', ...METHOD },
  Async: { path: '/test.Handlers/Async', ...METHOD },
};

describe('the unary handler wrapper', () => {
  let server: grpc.Server;
  let client: grpc.Client &
    Record<string, (req: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void) => void>;
  const logged: Array<Record<string, unknown>> = [];
  /** What each call does: set by each test. */
  let behave: (req: Buffer) => Buffer | Promise<Buffer> = (req) => req;

  before(async () => {
    const log = jsonLogger((line) => logged.push(JSON.parse(line)));
    // The defaults: a loopback caller is the admin, which holds every permission.
    const ctx = { statuses: new Statuses(log, 8192), auth: new Authenticator(defaultConfig('/').auth, log) };
    server = new grpc.Server();
    server.addService(DEFINITION, {
      Sync: unary('Sync', ctx, 'read', (req: Buffer) => behave(req) as Buffer),
      Async: unary('Async', ctx, 'manageRules', async (req: Buffer) => behave(req)),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const Client = grpc.makeGenericClientConstructor(DEFINITION, 'Handlers');
    client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as typeof client;
  });
  after(() => {
    client.close();
    server.forceShutdown();
  });
  beforeEach(() => {
    logged.length = 0;
  });

  const call = (method: 'Sync' | 'Async'): Promise<{ err: grpc.ServiceError | null; res?: Buffer }> =>
    new Promise((resolve) => client[method](Buffer.from('hi'), (err, res) => resolve({ err, res })));

  for (const method of ['Sync', 'Async'] as const) {
    it(`${method}: answers the handler's reply`, async () => {
      behave = (req) => Buffer.concat([req, Buffer.from('!')]);
      const { err, res } = await call(method);
      expect([err, res?.toString()]).to.deep.equal([null, 'hi!']);
    });

    it(`${method}: maps a domain error to its status, with field violations for INVALID_ARGUMENT, logging nothing`, async () => {
      behave = () => {
        throw new NotFoundError('x');
      };
      const missing = (await call(method)).err!;
      expect([missing.code, missing.details]).to.deep.equal([grpc.status.NOT_FOUND, 'AccessAudit "x" not found']);
      behave = () => {
        throw new InvalidArgumentError([{ field: 'name', description: 'is required' }]);
      };
      const invalid = (await call(method)).err!;
      expect([invalid.code, invalid.details]).to.deep.equal([grpc.status.INVALID_ARGUMENT, 'name: is required']);
      expect(logged).to.deep.equal([]);
    });

    it(`${method}: answers anything unexpected INTERNAL with a generic message, and logs it with its stack`, async () => {
      behave = () => {
        throw new TypeError('cannot read properties of undefined');
      };
      const { err } = await call(method);
      expect([err?.code, err?.details]).to.deep.equal([grpc.status.INTERNAL, 'internal error; see the sidecar log']);
      expect(logged).to.have.length(1);
      expect(logged[0]).to.include({ level: 'error', msg: 'internal error', rpc: method });
      expect(String(logged[0].err)).to.match(/^TypeError: cannot read properties of undefined\n\s+at /);
    });
  }
});
