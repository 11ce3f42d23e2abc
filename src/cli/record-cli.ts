#!/usr/bin/env node
// meshaudit-record: sends events (JSON, one per line, as grpcurl would) to a running sidecar with
// AuditService.Record and prints, for each, whether it was audited. For trying rules by hand and for
// scripts; a control plane streams with StreamEvents instead (src/client).
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { loadMeshaudit } from '../server/proto';
import { fieldViolationsOf } from '../server/status';

const USAGE = `Usage: meshaudit-record [--address HOST:PORT] [FILE|-]

Reads events, one JSON object per line (the Event message's JSON form), from FILE or standard input,
records each with AuditService.Record, and prints "audited", "not audited" or the error per line.
  --address HOST:PORT   the sidecar (default 127.0.0.1:5690)
Exit code: 0 when every event was accepted, 1 otherwise.`;

function main(argv: string[]): void {
  let address = '127.0.0.1:5690';
  let file = '-';
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--help' || argv[i] === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    if (argv[i] === '--address') address = argv[++i] ?? '';
    else file = argv[i];
  }
  const text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const { pkg } = loadMeshaudit();
  const client = new pkg.AuditService(address, grpc.credentials.createInsecure()) as unknown as Record<string, Function> & grpc.Client;
  let failed = 0;
  const next = (i: number): void => {
    if (i >= lines.length) {
      client.close();
      process.exitCode = failed > 0 ? 1 : 0;
      return;
    }
    let event: unknown;
    try {
      event = JSON.parse(lines[i]);
    } catch (e) {
      failed++;
      process.stdout.write(`line ${i + 1}: not JSON: ${(e as Error).message}\n`);
      return next(i + 1);
    }
    client.Record({ event }, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, reply: { audited: boolean }) => {
      if (err) {
        failed++;
        const violations = fieldViolationsOf(err.metadata);
        const why = violations.length ? violations.map((v) => `${v.field}: ${v.description}`).join('; ') : err.details;
        process.stdout.write(`line ${i + 1}: ${grpc.status[err.code]}: ${why}\n`);
      } else {
        process.stdout.write(`line ${i + 1}: ${reply.audited ? 'audited' : 'not audited (no rule covers it)'}\n`);
      }
      next(i + 1);
    });
  };
  next(0);
}

main(process.argv.slice(2));
