// Sequencing per identifier, with the real evaluator, writer and checkpoint, and a sink the test holds.
import { expect } from 'chai';
import { contract } from '../../src/contract';
import { Metrics } from '../../src/metrics';
import { defaultLimits } from '../../src/config/load';
import { BatchEvaluator } from '../../src/pipeline/evaluate-batch';
import { Sequencer, WrongZoneError } from '../../src/pipeline/sequencer';
import { AuditWriter } from '../../src/pipeline/writer';
import { RecordDateFormatter } from '../../src/record/dates';
import { compileRules, DEFAULT_SKIP_TYPES } from '../../src/rules';
import { Checkpoint } from '../../src/store/checkpoint';
import { InvalidArgumentError } from '../../src/validators';
import { scanStreamRequest } from '../../src/wire/stream-request';
import { AUDIT_ALL, MemorySink, resourceEvent, samples, tempDir } from '../support/helpers';

const KEY = 'zone-1/cp-0';

/** A StreamEvents batch of events firstSeq..firstSeq+n-1, as the sidecar receives it. */
function batch(firstSeq: number, n: number): ReturnType<typeof scanStreamRequest> {
  const events = Array.from({ length: n }, (_, i) => resourceEvent(firstSeq + i));
  return scanStreamRequest(contract().messages.StreamEventsRequest.encode({ firstSeq, events }).finish());
}

function setup(): { sink: MemorySink; writer: AuditWriter; sequencer: Sequencer; dir: string; metrics: Metrics } {
  const dir = tempDir();
  const checkpoint = new Checkpoint(dir);
  checkpoint.load();
  const sink = new MemorySink({ held: true });
  const writer = new AuditWriter([sink], checkpoint);
  const evaluator = new BatchEvaluator(
    compileRules([AUDIT_ALL], DEFAULT_SKIP_TYPES),
    new RecordDateFormatter(() => 0),
    defaultLimits(),
  );
  const metrics = new Metrics({ zone: 'zone-1', version: 'test' });
  const sequencer = new Sequencer(writer, evaluator, new Map(), { zone: 'zone-1', now: () => 0, metrics });
  return { sink, writer, sequencer, dir, metrics };
}

/** The events' outcomes in `metrics` now. */
async function outcomes(metrics: Metrics): Promise<Record<string, number | undefined>> {
  const m = samples(await metrics.prometheus());
  return {
    recorded: m.get('meshaudit_events_recorded_total'),
    skipped: m.get('meshaudit_events_skipped_total'),
    duplicates: m.get('meshaudit_events_duplicate_total'),
    invalid: m.get('meshaudit_events_rejected_total{reason="invalid"}'),
    evaluationFailed: m.get('meshaudit_events_rejected_total{reason="evaluation_failed"}'),
  };
}

describe('Sequencer', () => {
  it('counts what became of the events of a batch once it is committed, not before', async () => {
    const { sink, writer, sequencer, metrics } = setup();
    const events = [
      resourceEvent(1),
      { ...resourceEvent(2), resource: { type: 'ZoneInsight', name: 'z', mesh: '' } }, // a skipped type
      { ...resourceEvent(3), action: 'CREAT' },
    ];
    const request = (firstSeq: number, evs: unknown[]) =>
      scanStreamRequest(contract().messages.StreamEventsRequest.encode({ firstSeq, events: evs }).finish());
    const first = sequencer.submit(KEY, request(1, events));
    // A resend of the first two beside one new event: two duplicates.
    const resent = sequencer.submit(KEY, request(2, [events[1], events[2], resourceEvent(4)]));
    const none = { recorded: 0, skipped: 0, duplicates: 0, invalid: 0, evaluationFailed: 0 };
    expect(await outcomes(metrics)).to.deep.equal(none);
    sink.release();
    await Promise.all([first, resent]);
    expect(await outcomes(metrics)).to.deep.equal({ ...none, recorded: 2, skipped: 1, duplicates: 2, invalid: 1 });
    await writer.close(100);
  });

  it('refuses an identifier of another zone as WrongZoneError, an invalid one as a plain InvalidArgumentError', () => {
    const { sequencer } = setup();
    expect(() => sequencer.identify('zone-2', 'cp-0')).to.throw(WrongZoneError);
    try {
      sequencer.identify('zone-2', 'cp/0');
      expect.fail('accepted');
    } catch (e) {
      expect(e).to.be.instanceOf(InvalidArgumentError).and.not.instanceOf(WrongZoneError);
    }
  });

  it('never moves a committed sequence back when a reconnected CP resends a batch still in flight', async () => {
    const { sink, writer, sequencer, dir } = setup();
    // The first stream's two batches are accepted, not yet written (the disk is held)...
    const first = [sequencer.submit(KEY, batch(1, 100)), sequencer.submit(KEY, batch(101, 100))];
    // ...when the CP reconnects: its resume point is still 0, and it resends the first batch.
    expect(sequencer.identify('zone-1', 'cp-0')).to.deep.equal({ key: KEY, ackedSeq: 0 });
    const resent = sequencer.submit(KEY, batch(1, 100));
    sink.release();
    const acks = await Promise.all([...first, resent]);
    expect(acks.map((a) => [a.ackedSeq, a.recorded, a.duplicates])).to.deep.equal([
      [100, 100, 0],
      [200, 100, 0],
      [200, 0, 100],
    ]);
    expect(sink.lines).to.have.length(200);
    await writer.close(100);
    expect(new Checkpoint(dir).load().state.seqs.get(KEY)).to.equal(200);
  });

  it('refuses a gap before accepting anything, naming the sequence to resend from', async () => {
    const { sink, writer, sequencer } = setup();
    sink.release();
    await sequencer.submit(KEY, batch(1, 10));
    expect(() => sequencer.submit(KEY, batch(12, 5))).to.throw(
      'sequence gap for zone-1/cp-0: expected firstSeq <= 11, got 12; resend from 11',
    );
    expect(sequencer.positions()).to.deep.equal([{ identifier: KEY, accepted: 10, committed: 10 }]);
    await writer.close(100);
  });

  it('words every identifier problem: a missing part is required, a malformed one named, another zone refused', () => {
    const { sequencer } = setup();
    const problems = (zone: string, instance: string): string[] => {
      try {
        sequencer.identify(zone, instance);
        return [];
      } catch (e) {
        return (e as InvalidArgumentError).violations.map((v) => `${v.field}: ${v.description}`);
      }
    };
    expect(problems('', 'cp/0')).to.deep.equal([
      'identifier.zone: is required',
      'identifier.instance: must be 1-253 characters of [A-Za-z0-9._:-], got "cp/0"',
    ]);
    expect(problems('zone-2', 'cp-0')).to.deep.equal([
      `identifier.zone: this sidecar serves zone "zone-1", not "zone-2"; each zone's control plane needs its own sidecar`,
    ]);
  });
});
