// The k-way merge of record sources by date: each source (one sidecar's trail, in its order) gives its
// records one at a time; the merge yields the record with the earliest date among the sources' heads, so
// it holds one record per source, however long the sources are. Stable: equal dates keep the sources'
// order (the source given first first), and each source's own order is kept whatever its dates say.

/** One source: its next record, or undefined once it has no more. */
export type RecordSource<T> = () => Promise<T | undefined>;

interface Head<T> {
  readonly item: T;
  readonly dateMs: number;
  readonly source: number;
}

/**
 * Yields every item of `sources`, merged by `dateMs` (a record without a readable date sorts first: it
 * is yielded as soon as it is a head, so the source goes on). Each source is read once its head is yielded.
 */
export async function* mergeByDate<T>(
  sources: readonly RecordSource<T>[],
  dateMs: (item: T) => number,
): AsyncGenerator<T> {
  const heap: Head<T>[] = [];
  const pull = async (source: number): Promise<void> => {
    const item = await sources[source]();
    if (item === undefined) return;
    const ms = dateMs(item);
    push(heap, { item, dateMs: Number.isNaN(ms) ? -Infinity : ms, source });
  };
  await Promise.all(sources.map((_, i) => pull(i)));
  while (heap.length > 0) {
    const head = pop(heap);
    yield head.item;
    await pull(head.source);
  }
}

function before<T>(a: Head<T>, b: Head<T>): boolean {
  return a.dateMs < b.dateMs || (a.dateMs === b.dateMs && a.source < b.source);
}

function push<T>(heap: Head<T>[], h: Head<T>): void {
  heap.push(h);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(heap[i], heap[parent])) break;
    [heap[i], heap[parent]] = [heap[parent], heap[i]];
    i = parent;
  }
}

function pop<T>(heap: Head<T>[]): Head<T> {
  const top = heap[0];
  const last = heap.pop() as Head<T>;
  if (heap.length === 0) return top;
  heap[0] = last;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let smallest = i;
    if (l < heap.length && before(heap[l], heap[smallest])) smallest = l;
    if (r < heap.length && before(heap[r], heap[smallest])) smallest = r;
    if (smallest === i) return top;
    [heap[i], heap[smallest]] = [heap[smallest], heap[i]];
    i = smallest;
  }
}
