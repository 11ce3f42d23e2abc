import { expect } from 'chai';
import * as protobuf from 'protobufjs';
import { inexactFields } from '../../src/wire/exact-fields';

const root = protobuf.parse(`
  syntax = "proto3";
  message Inner { string text = 1; repeated string list = 2; }
  message Outer {
    string text = 1;
    uint64 count = 2;
    int64 delta = 3;
    Inner inner = 4;
    repeated Inner inners = 5;
    map<string, string> tags = 6;
  }
`).root;
const Outer = root.lookupType('Outer');
const BAD = Buffer.from([0xc3, 0x28]); // a lead byte whose continuation is not one

describe('inexactFields', () => {
  it('passes an exact message, whatever its unknown fields hold', () => {
    const bytes = Outer.encode({
      text: 'ünïcode',
      count: 2 ** 53 - 1,
      delta: -(2 ** 53 - 1),
      tags: { a: 'b' },
    }).finish();
    const withUnknown = Buffer.concat([bytes, Buffer.from([0x7a, 2, 0xff, 0xff])]); // field 15, not UTF-8
    expect(inexactFields(Outer, withUnknown)).to.deep.equal([]);
  });

  it('names each string that is not UTF-8 by its path, with the index of a repeated one', () => {
    const w = protobuf.Writer.create();
    w.uint32(0x0a).bytes(BAD);
    const inner = protobuf.Writer.create().uint32(0x12).string('ok').uint32(0x12).bytes(BAD).finish();
    w.uint32(0x2a).bytes(Buffer.alloc(0)).uint32(0x2a).bytes(inner);
    const entry = protobuf.Writer.create().uint32(0x0a).bytes(BAD).uint32(0x12).string('v').finish();
    w.uint32(0x32).bytes(entry);
    expect(inexactFields(Outer, w.finish())).to.deep.equal([
      { field: 'text', description: 'is not valid UTF-8 (protobuf strings must be)' },
      { field: 'inners[1].list[1]', description: 'is not valid UTF-8 (protobuf strings must be)' },
      { field: 'tags', description: 'holds a key or value that is not valid UTF-8 (protobuf strings must be)' },
    ]);
  });

  it('quotes 64-bit integers a number cannot hold as they were sent, both signs', () => {
    const bytes = Outer.encode({ count: '9007199254740992', delta: '-9223372036854775808' }).finish();
    expect(inexactFields(Outer, bytes)).to.deep.equal([
      { field: 'count', description: 'must be at most 9007199254740991 (2^53 - 1), got 9007199254740992' },
      { field: 'delta', description: 'must be at least -9007199254740991 (-(2^53 - 1)), got -9223372036854775808' },
    ]);
  });

  it('throws on bytes that are not the message: a length past the end, a nested message past its own', () => {
    expect(() => inexactFields(Outer, Buffer.from([0x0a, 5, 0x61]))).to.throw(/index out of range/);
    // inner says 2 bytes, but its string field says 3: the string runs into the outer message.
    expect(() => inexactFields(Outer, Buffer.from([0x22, 2, 0x0a, 3, 0x61, 0x62, 0x63]))).to.throw(
      'the Inner message runs past the message that holds it',
    );
  });

  it('names the first five bad fields and counts the rest: a million of them stay a handful of violations', () => {
    // 3 bytes each: a 3 MB message, within the default 4 MiB request size.
    const one = Buffer.from([0x12, 1, 0xff]);
    const n = 1_000_000;
    const inner = Buffer.alloc(one.length * n);
    for (let i = 0; i < n; i++) one.copy(inner, i * one.length);
    const bytes = protobuf.Writer.create().uint32(0x22).bytes(inner).finish();
    const before = process.memoryUsage().heapUsed;
    const got = inexactFields(Outer, bytes);
    expect(process.memoryUsage().heapUsed - before).to.be.below(64 * 1024 * 1024);
    expect(got).to.deep.equal([
      ...[0, 1, 2, 3, 4].map((i) => ({
        field: `inner.list[${i}]`,
        description: 'is not valid UTF-8 (protobuf strings must be)',
      })),
      { field: '', description: `and ${n - 5} more field(s) like these` },
    ]);
  });
});
