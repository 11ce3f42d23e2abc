// The naive streaming baseline (issue 4): StreamEvents on grpc-js with proto-loader's default
// conversion, JSON.stringify per event, one rotating-file-stream write per batch, ack after the write.
// No rules, no validation, no checkpoint: it answers every identifier with "resume from 1".
import type * as grpc from '@grpc/grpc-js';
import { naiveArgs, naiveFile, serveNaive } from './naive-common';

interface NaiveRequest {
  identifier?: unknown;
  /** A Long under the default conversion. */
  firstSeq?: { toString(): string };
  events?: unknown[];
}

const args = naiveArgs(process.argv.slice(2));
const out = naiveFile(args);

serveNaive(
  args,
  {
    StreamEvents: (call: grpc.ServerDuplexStream<NaiveRequest, unknown>) => {
      call.on('data', (req: NaiveRequest) => {
        if (req.identifier) call.write({ ackedSeq: 0 });
        const events = req.events ?? [];
        if (events.length === 0) return;
        let text = '';
        for (const e of events) text += `${JSON.stringify(e)}\n`;
        const firstSeq = Number(String(req.firstSeq));
        out.write(text, (err) => {
          if (err) return call.destroy(err);
          call.write({ ackedSeq: firstSeq + events.length - 1, firstSeq, recorded: events.length });
        });
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  },
  out,
);
