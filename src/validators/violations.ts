// What is wrong with an input, for every input meshaudit reads: the configuration, the rules files,
// AccessAudits through the API, events, the store's file, the command line. One shape, one way to build
// paths, one set of words, one way to print them. Kuma's `validators` package is the model: validators
// collect every violation with its path and return them all at once; the edge (a start-up message, a
// CLI line, a gRPC BadRequest) prints them from this structure, never by parsing a message back.
import { type ErrorKind, MeshauditError } from '../errors';
import { nearest } from './suggest';

export interface Violation {
  /** The path of the offending field: `rules[1].access[0]`, `kmesh.access.audit.backends[0].file.path`; '' for the input as a whole. */
  readonly field: string;
  /** What is wrong, in the words below: `unknown action "CREAT", did you mean "CREATE"?`. */
  readonly description: string;
  /** The input it was found in, when that is a file: `rules.yaml`. */
  readonly source?: string;
  /** 1-based line in that input, when the input is YAML. */
  readonly line?: number;
}

/** An input holds violations: the same input fails again. Exit code 2 when it stops start-up. */
export class InvalidArgumentError extends MeshauditError {
  readonly kind: ErrorKind = 'invalid-argument';
  override readonly exitCode = 2;

  constructor(readonly violations: readonly Violation[]) {
    super(violations.map((v) => formatViolation(v)).join('\n'));
  }
}

// ---- Paths ----

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/**
 * `parent.name`; a name that is not an identifier, or a long one, is quoted and cut
 * (`parent["kuma.io/service"]`); at the root, `name`.
 */
export function field(parent: string, name: string): string {
  if (name.length > MAX_QUOTED_CHARS || !IDENTIFIER.test(name)) return entry(parent, name);
  return parent === '' ? name : `${parent}.${name}`;
}

/** `parent[i]`: an item of a list. */
export function index(parent: string, i: number): string {
  return `${parent}[${i}]`;
}

/** `parent["key"]`: an entry of a map, whatever its key looks like (cut to MAX_QUOTED_CHARS). */
export function entry(parent: string, key: string): string {
  return `${parent}[${quote(key)}]`;
}

/** `path` re-rooted under `prefix`, the field that held the input: `accessAudit` + `rules[0]` = `accessAudit.rules[0]`. */
export function under(prefix: string, path: string): string {
  if (path === '') return prefix;
  if (prefix === '') return path;
  return path.startsWith('[') ? `${prefix}${path}` : `${prefix}.${path}`;
}

/** The path that encloses `path` (`a.b[2]` -> `a.b`, `a` -> ''): where a missing field would be. */
export function parentOf(path: string): string {
  return path.slice(0, Math.max(path.lastIndexOf('.'), path.lastIndexOf('['), 0));
}

// ---- Words ----

export const IS_REQUIRED = 'is required';

/** A protobuf string whose bytes are not UTF-8: proto3 requires it, and decoders would change them silently. */
export const NOT_UTF8 = 'is not valid UTF-8 (protobuf strings must be)';

/** The largest 64-bit integer meshaudit keeps: a JS number holds every integer up to it exactly. */
export const MAX_EXACT_INTEGER = Number.MAX_SAFE_INTEGER;

/** `must be at most 9007199254740991 (2^53 - 1), got 18446744073709551615`, the value as sent. */
export function pastExact(got: bigint): string {
  return got < 0n
    ? mustBe(`at least -${MAX_EXACT_INTEGER} (-(2^53 - 1))`, got)
    : mustBe(`at most ${MAX_EXACT_INTEGER} (2^53 - 1)`, got);
}

/** Longest value quoted back in a message: enough to recognise it, not a wall of text. */
const MAX_QUOTED_CHARS = 64;

/** A string as a message quotes it: JSON-quoted, cut after MAX_QUOTED_CHARS characters with `...` inside the quotes. */
export function quote(value: string): string {
  return JSON.stringify(value.length > MAX_QUOTED_CHARS ? `${value.slice(0, MAX_QUOTED_CHARS)}...` : value);
}

/**
 * A value as the operator wrote it, more or less: strings quoted, numbers in YAML's spelling, collections
 * named (`objects`: what a mapping is called, "a mapping" in YAML, "an object" in JSON).
 */
export function show(value: unknown, objects = 'a mapping'): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return '.nan';
    if (!Number.isFinite(value)) return value > 0 ? '.inf' : '-.inf';
    return String(value);
  }
  if (typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list';
  if (value instanceof Date) return 'a timestamp';
  if (typeof value === 'object') return objects;
  return `a ${typeof value}`;
}

/** `must be <expected>, got <value>`. */
export function mustBe(expected: string, got: unknown): string {
  return `must be ${expected}, got ${show(got)}`;
}

/** `, did you mean "zone"?` when a candidate is a plausible typo of `value`; '' otherwise. */
export function didYouMean(value: string, candidates: readonly string[]): string {
  const suggestion = nearest(value, candidates);
  return suggestion === undefined ? '' : `, did you mean ${quote(suggestion)}?`;
}

/** `unknown action "CREAT", did you mean "CREATE"?`. */
export function unknown(what: string, value: string, candidates: readonly string[]): string {
  return `unknown ${what} ${quote(value)}${didYouMean(value, candidates)}`;
}

/** The description of a key a mapping does not have (the key is in the path). */
export function unknownField(name: string, known: readonly string[]): string {
  return `unknown field${didYouMean(name, known)}`;
}

/** `must be at most 1024 characters, got 1500`. */
export function tooLong(maxChars: number, gotChars: number): string {
  return `must be at most ${maxChars} characters, got ${gotChars}`;
}

/** `must have at most 64 entries, got 65`. */
export function tooMany(maxEntries: number, gotEntries: number): string {
  return `must have at most ${maxEntries} entries, got ${gotEntries}`;
}

// ---- Collecting ----

/** Violations as a validator finds them, all of them, to be returned at once. */
export class Violations {
  private readonly found: Violation[] = [];

  constructor(private readonly where: { source?: string; lineOf?: (field: string) => number | undefined } = {}) {}

  /**
   * Adds a violation at `field`. With a line map, it gets the line of the field, or of the nearest
   * enclosing one (a missing field is reported where its parent is).
   */
  add(field: string, description: string): void {
    const { source, lineOf } = this.where;
    const line = lineOf === undefined ? undefined : lineNear(field, lineOf);
    this.found.push({
      field,
      description,
      ...(source === undefined ? {} : { source }),
      ...(line === undefined ? {} : { line }),
    });
  }

  /** Adds every violation of `other`, their paths re-rooted under `prefix`. */
  addAll(other: readonly Violation[], prefix = ''): void {
    for (const v of other) this.found.push({ ...v, field: under(prefix, v.field) });
  }

  get list(): readonly Violation[] {
    return this.found;
  }

  get isEmpty(): boolean {
    return this.found.length === 0;
  }

  /** Throws InvalidArgumentError with every violation, sorted by line, when there is any. */
  throwIfAny(): void {
    if (!this.isEmpty) throw new InvalidArgumentError(byLine(this.found));
  }
}

function lineNear(path: string, lineOf: (field: string) => number | undefined): number | undefined {
  for (let f = path; ; f = parentOf(f)) {
    const line = lineOf(f);
    if (line !== undefined || f === '') return line;
  }
}

// ---- Printing ----

/** `rules.yaml:12: rules[0].access[0]: unknown action ...`: a violation as a start-up message or a CLI line names it. */
export function formatViolation(v: Violation): string {
  const where = v.source === undefined ? '' : `${v.source}${v.line === undefined ? '' : `:${v.line}`}: `;
  return `${where}${v.field === '' ? '' : `${v.field}: `}${v.description}`;
}

/** `line 12: rules[0].access[0]: unknown action ...`: a violation inside a text that one request field held. */
export function formatWithin(v: Violation): string {
  return `${v.line === undefined ? '' : `line ${v.line}: `}${v.field === '' ? '' : `${v.field}: `}${v.description}`;
}

/** Stable: the input's own order among equal lines; violations without a line go last. */
export function byLine(violations: readonly Violation[]): Violation[] {
  return [...violations].sort((a, b) => (a.line ?? Number.POSITIVE_INFINITY) - (b.line ?? Number.POSITIVE_INFINITY));
}
