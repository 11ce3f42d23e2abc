// What the PromQL of deploy/grafana and deploy/prometheus reads, and whether a registry exports it. No PromQL
// parser is at hand offline, so this is a tokenizer that knows just enough of the grammar to tell the names
// apart: a name followed by `(`, or by `by`/`without`, is a function or an aggregation; `by (...)`, `on (...)`
// and the like hold label names; `{...}` holds the matchers of the metric before it; `[...]` is a range or a
// subquery; strings, numbers, durations and Grafana's template variables (`$instance`, `${zone}`,
// `$__rate_interval`) are values. Every other name is a metric.

/** The label names a matcher block `{...}` names, for the metric just before it (`''` for a bare block). */
export interface Selector {
  readonly metric: string;
  readonly labels: readonly string[];
}

export interface PromqlNames {
  /** Metric names, as written (`meshaudit_ack_latency_seconds_bucket`). */
  readonly metrics: readonly string[];
  readonly selectors: readonly Selector[];
  /** Label names of `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`. */
  readonly grouping: readonly string[];
}

/** Binary operators and modifiers spelled as words (case-insensitive in PromQL), and the number words. */
const KEYWORDS = new Set(['and', 'or', 'unless', 'atan2', 'bool', 'offset', 'inf', 'nan']);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

type Token = { kind: 'name' | 'value' | 'punct'; text: string };

const NAME = /^[a-zA-Z_:][\w:]*/;
// A number, with a duration's units when it is one (`offset 5m`, `24h`); hex as PromQL allows.
const NUMBER = /^(?:0x[\da-f]+|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?(?:ms|[smhdwy])*)/i;
const TEMPLATE_VARIABLE = /^\$(?:\{[^}]*\}|\w+)/;

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const rest = expr.slice(i);
    const c = expr[i];
    const value = TEMPLATE_VARIABLE.exec(rest)?.[0] ?? NUMBER.exec(rest)?.[0];
    const name = NAME.exec(rest)?.[0];
    if (/\s/.test(c)) i++;
    else if (c === '#') i = expr.indexOf('\n', i) < 0 ? expr.length : expr.indexOf('\n', i);
    else if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < expr.length && expr[j] !== c) j += expr[j] === '\\' && c !== '`' ? 2 : 1;
      if (j >= expr.length) throw new Error(`unterminated string at ${i} in: ${expr}`);
      tokens.push({ kind: 'value', text: expr.slice(i, j + 1) });
      i = j + 1;
    } else if (c === '[') {
      // A range or a subquery: durations, `:` and template variables, never a name.
      const end = expr.indexOf(']', i);
      if (end < 0) throw new Error(`unterminated [ at ${i} in: ${expr}`);
      tokens.push({ kind: 'value', text: expr.slice(i, end + 1) });
      i = end + 1;
    } else if (value !== undefined) {
      tokens.push({ kind: 'value', text: value });
      i += value.length;
    } else if (name !== undefined) {
      tokens.push({ kind: 'name', text: name });
      i += name.length;
    } else {
      tokens.push({ kind: 'punct', text: c });
      i++;
    }
  }
  return tokens;
}

/** The metric names and label names `expr` reads. Throws on what it cannot read (an unbalanced bracket). */
export function promqlNames(expr: string): PromqlNames {
  const tokens = tokenize(expr);
  const metrics: string[] = [];
  const selectors: Selector[] = [];
  const grouping: string[] = [];
  /** The names inside the parentheses that open at `open`, and the index after the `)`. */
  const labelList = (open: number): { labels: string[]; next: number } => {
    const labels: string[] = [];
    let j = open + 1;
    for (; j < tokens.length && tokens[j].text !== ')'; j++) if (tokens[j].kind === 'name') labels.push(tokens[j].text);
    if (j >= tokens.length) throw new Error(`unbalanced ( in: ${expr}`);
    return { labels, next: j + 1 };
  };
  for (let i = 0; i < tokens.length; ) {
    const t = tokens[i];
    const next = tokens[i + 1];
    const lower = t.text.toLowerCase();
    if (t.kind === 'punct' && t.text === '{') {
      // A matcher block without a metric name before it (`{__name__=~"..."}`).
      const end = matcherEnd(tokens, i, expr);
      selectors.push({ metric: '', labels: matcherLabels(tokens, i, end) });
      i = end + 1;
    } else if (t.kind !== 'name') {
      i++;
    } else if (GROUPING.has(lower)) {
      if (next?.text === '(') {
        const list = labelList(i + 1);
        grouping.push(...list.labels);
        i = list.next;
      } else i++;
    } else if (KEYWORDS.has(lower)) {
      i++;
    } else if (next?.text === '(' || (next?.kind === 'name' && ['by', 'without'].includes(next.text.toLowerCase()))) {
      i++; // a function or an aggregation
    } else {
      metrics.push(t.text);
      if (next?.text === '{') {
        const end = matcherEnd(tokens, i + 1, expr);
        selectors.push({ metric: t.text, labels: matcherLabels(tokens, i + 1, end) });
        i = end + 1;
      } else {
        selectors.push({ metric: t.text, labels: [] });
        i++;
      }
    }
  }
  return { metrics, selectors, grouping };
}

function matcherEnd(tokens: readonly Token[], open: number, expr: string): number {
  for (let j = open + 1; j < tokens.length; j++) if (tokens[j].text === '}') return j;
  throw new Error(`unbalanced { in: ${expr}`);
}

/** The label names of a matcher block: each name that an operator follows (`a="x", b!~"y"`). */
function matcherLabels(tokens: readonly Token[], open: number, end: number): string[] {
  const labels: string[] = [];
  for (let j = open + 1; j < end; j++) if (tokens[j].kind === 'name') labels.push(tokens[j].text);
  return labels;
}

/** A metric family of an exposition: its type and the label names its samples carry. */
export interface Family {
  readonly type: string;
  readonly labels: Set<string>;
}

/**
 * The families of a Prometheus text exposition, by name, from its `# TYPE` lines (a family is there even
 * while it has no sample, as a labelled counter before its first inc()), with the label names its samples show.
 */
export function familiesOf(exposition: string): Map<string, Family> {
  const families = new Map<string, Family>();
  for (const line of exposition.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type !== null) {
      families.set(type[1], { type: type[2], labels: new Set() });
      continue;
    }
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? /.exec(line);
    if (sample === null) continue;
    const family = families.get(familyName(sample[1], families) ?? '');
    for (const label of (sample[2] ?? '').matchAll(/([a-zA-Z_]\w*)="/g)) family?.labels.add(label[1]);
  }
  return families;
}

/** The series names of an exposition's samples (`x_bucket`, `x_count`...), each once. */
export function sampleNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split('\n')) {
    const sample = /^([a-zA-Z_:][\w:]*)[{ ]/.exec(line);
    if (sample !== null) names.add(sample[1]);
  }
  return names;
}

/**
 * The family a series name belongs to: itself, or the histogram (`_bucket`, `_sum`, `_count`) or summary
 * (`_sum`, `_count`) it is a series of; undefined when the registry has no such family.
 */
export function familyName(name: string, families: ReadonlyMap<string, Family>): string | undefined {
  // A histogram's own name is no series: Prometheus stores only its _bucket, _sum and _count.
  if (families.has(name)) return families.get(name)?.type === 'histogram' ? undefined : name;
  const m = /^(.+)_(bucket|sum|count)$/.exec(name);
  const base = m === null ? undefined : families.get(m[1])?.type;
  if (base === 'histogram' || (base === 'summary' && m?.[2] !== 'bucket')) return m?.[1];
  return undefined;
}

/** One PromQL expression of a deploy/ file, and where it is (for the message of a failed check). */
export interface Query {
  readonly where: string;
  readonly expr: string;
}

/** Labels every scraped series has (Prometheus' target labels), and the bucket bound of a histogram. */
const TARGET_LABELS = ['instance', 'job'];

/**
 * What `queries` read that the families do not have, one line each (`where: metric "x" does not exist`);
 * empty when everything exists. With `checkLabels`, also each label a matcher names that its metric's
 * family does not carry, and each grouping label that no family of the expression carries (the families'
 * labels must then be complete: from a registry's label names, not only from the samples of an exposition).
 */
export function unknownNames(
  queries: readonly Query[],
  families: ReadonlyMap<string, Family>,
  opts: { checkLabels?: boolean } = {},
): string[] {
  const problems: string[] = [];
  for (const q of queries) {
    const names = promqlNames(q.expr);
    const known = new Set(TARGET_LABELS);
    for (const metric of names.metrics) {
      const name = familyName(metric, families);
      if (name === undefined) {
        problems.push(`${q.where}: metric "${metric}" does not exist`);
        continue;
      }
      const family = families.get(name)!;
      for (const label of family.labels) known.add(label);
      if (family.type === 'histogram') known.add('le');
    }
    if (!opts.checkLabels) continue;
    for (const s of names.selectors) {
      const name = familyName(s.metric, families);
      if (name === undefined) continue;
      const family = families.get(name)!;
      for (const label of s.labels) {
        const bucket = family.type === 'histogram' && s.metric.endsWith('_bucket');
        const has = family.labels.has(label) || TARGET_LABELS.includes(label) || (bucket && label === 'le');
        if (!has) problems.push(`${q.where}: metric "${s.metric}" has no label "${label}"`);
      }
    }
    for (const label of names.grouping) {
      if (!known.has(label)) problems.push(`${q.where}: no metric of the expression has the label "${label}"`);
    }
  }
  return problems;
}
