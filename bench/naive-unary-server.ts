// The naive unary baseline (issue 4): Record on grpc-js with proto-loader's default conversion, one
// JSON.stringify and one rotating-file-stream write per call, the reply after the write. No rules.
import type * as grpc from '@grpc/grpc-js';
import { naiveArgs, naiveFile, serveNaive } from './naive-common';

const args = naiveArgs(process.argv.slice(2));
const out = naiveFile(args);

serveNaive(
  args,
  {
    Record: (call: grpc.ServerUnaryCall<{ event?: unknown }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      out.write(`${JSON.stringify(call.request.event)}\n`, (err) =>
        err ? callback(err) : callback(null, { audited: true }),
      );
    },
  },
  out,
);
