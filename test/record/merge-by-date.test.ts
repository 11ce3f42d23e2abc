import { expect } from 'chai';
import { mergeByDate, type RecordSource } from '../../src/record/merge-by-date';

interface Item {
  readonly source: string;
  readonly ms: number;
}

/** A source over `items`, counting what was read of it. */
function source(items: readonly Item[], reads: { n: number } = { n: 0 }): RecordSource<Item> {
  let i = 0;
  return async () => {
    reads.n++;
    return items[i++];
  };
}

async function all(sources: RecordSource<Item>[]): Promise<string[]> {
  const out: string[] = [];
  for await (const item of mergeByDate(sources, (x) => x.ms)) out.push(`${item.source}@${item.ms}`);
  return out;
}

const items = (name: string, ...ms: number[]): Item[] => ms.map((m) => ({ source: name, ms: m }));

describe('mergeByDate', () => {
  it('merges sources by date, each in its own order', async () => {
    expect(await all([source(items('a', 1, 4, 6)), source(items('b', 2, 3, 7)), source(items('c', 5))])).to.deep.equal([
      'a@1',
      'b@2',
      'b@3',
      'a@4',
      'c@5',
      'a@6',
      'b@7',
    ]);
  });

  it('keeps the order of the sources for equal dates, and of a source whose dates go back', async () => {
    expect(await all([source(items('a', 2, 2)), source(items('b', 1, 2, 0))])).to.deep.equal([
      'b@1',
      'a@2',
      'a@2',
      'b@2',
      'b@0',
    ]);
  });

  it('yields a record without a readable date as soon as it is a head', async () => {
    expect(await all([source(items('a', 5)), source(items('b', Number.NaN, 6))])).to.deep.equal([
      'b@NaN',
      'a@5',
      'b@6',
    ]);
  });

  it('ends with no sources or only empty ones', async () => {
    expect(await all([])).to.deep.equal([]);
    expect(await all([source([]), source([])])).to.deep.equal([]);
  });

  it('holds one record per source: a source is read again only once its head is yielded', async () => {
    const reads = { n: 0 };
    const merged = mergeByDate([source(items('a', 1, 2, 3, 4), reads), source(items('b', 10), reads)], (x) => x.ms);
    await merged.next();
    // The first heads of both, then a's second once a@1 went out.
    expect(reads.n).to.equal(2);
    await merged.next();
    expect(reads.n).to.equal(3);
  });
});
