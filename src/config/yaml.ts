// Safe YAML for the sidecar's config and for operator-supplied AccessAudit documents.
//
// One parse (js-yaml's flat event stream) feeds three things: the limits that keep hostile input
// cheap, a map from field paths to source lines (so validators can say `config.yaml:12: <field>: ...`),
// and js-yaml's own constructor, which builds the plain values from the same events.
//
// Limits, and why each exists:
// - size: everything after it is linear in the input, so bounding the input bounds time and memory;
// - depth: recursive validators and JSON.stringify must not run out of stack;
// - aliases: js-yaml shares an aliased value by reference, so building is cheap, but anything that walks
//   the result (validation, freezing, JSON) expands it. "Billion laughs" needs fewer than 100 aliases,
//   so the alias count alone is not enough: the nodes that aliases add are counted too, and an alias
//   to a node that is still open (a cycle) is refused.
import {
  CORE_SCHEMA,
  EVENT_ID,
  YAMLException,
  constructFromEvents,
  getScalarValue,
  parseEvents,
  type Event,
  type ScalarEvent,
} from 'js-yaml';

import { DEFAULT_YAML_ALIASES, DEFAULT_YAML_BYTES, DEFAULT_YAML_DEPTH } from './defaults';
import type { Limits } from './types';

/** Largest accepted input, in bytes of UTF-8 (meshaudit.limits.yamlBytes: src/config/defaults.ts says why). */
export const DEFAULT_MAX_BYTES = DEFAULT_YAML_BYTES;
/** Deepest accepted nesting, aliases included, counted as js-yaml counts it (meshaudit.limits.yamlDepth). */
export const DEFAULT_MAX_DEPTH = DEFAULT_YAML_DEPTH;
/** Most aliases (`*name`) per document (meshaudit.limits.yamlAliases). */
export const DEFAULT_MAX_ALIASES = DEFAULT_YAML_ALIASES;
/** Most nodes that aliases may add to one document once expanded (a bomb adds billions); fixed. */
export const DEFAULT_MAX_ALIAS_NODES = 10_000;

/** The configurable limits of a parse. */
export type YamlLimits = Pick<YamlOptions, 'maxBytes' | 'maxDepth' | 'maxAliases'>;

/**
 * The YAML limits of every YAML text read after the config (rules files, ApplyAccessAudits), from
 * meshaudit.limits: the one place they are built. The config file itself is parsed before they are known:
 * with the defaults.
 */
export function yamlLimits(limits: Pick<Limits, 'yamlBytes' | 'yamlDepth' | 'yamlAliases'>): YamlLimits {
  return { maxBytes: limits.yamlBytes, maxDepth: limits.yamlDepth, maxAliases: limits.yamlAliases };
}

export interface YamlOptions {
  /** Name used in error messages; `<input>` when absent. */
  readonly filename?: string;
  /** Default DEFAULT_MAX_BYTES. */
  readonly maxBytes?: number;
  /** Default DEFAULT_MAX_DEPTH. */
  readonly maxDepth?: number;
  /** Default DEFAULT_MAX_ALIASES; 0 refuses every alias, -1 lifts the limit (as in js-yaml). */
  readonly maxAliases?: number;
  /** Default DEFAULT_MAX_ALIAS_NODES. */
  readonly maxAliasNodes?: number;
}

export interface YamlDocuments {
  /** The non-empty documents, in order, as plain values (objects, arrays, scalars). */
  readonly docs: unknown[];
  /**
   * 1-based line of the key (or list item) at `path` in document `docIndex` (an index into `docs`),
   * or undefined when there is no such field. Paths use `.` for keys and `[i]` for list items,
   * e.g. `kmesh.access.audit.backends[0].file.path`; keys may themselves contain dots
   * (`tags.kuma.io/service`). The empty path is the document's root.
   */
  lineOf(docIndex: number, path: string): number | undefined;
}

/** Input that is not YAML, or that YAML the limits refuse. The message names the file and line. */
export class YamlError extends Error {
  override readonly name = 'YamlError';

  constructor(
    readonly filename: string,
    /** 1-based; undefined when the problem concerns the whole input (its size). */
    readonly line: number | undefined,
    /** The problem without the location, e.g. `bad indentation of a mapping entry`. */
    readonly reason: string,
  ) {
    super(`${filename}${line === undefined ? '' : `:${line}`}: ${reason}`);
  }
}

export function parseYamlDocuments(text: string, opts: YamlOptions = {}): YamlDocuments {
  const filename = opts.filename ?? '<input>';
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  // A UTF-16 unit is at least one UTF-8 byte, so a long string is refused without encoding it.
  if (text.length > maxBytes || Buffer.byteLength(text, 'utf8') > maxBytes) {
    throw new YamlError(filename, undefined, `too large: more than ${maxBytes} bytes`);
  }
  const lines = new LineIndex(text);
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
  const maxAliases = opts.maxAliases ?? DEFAULT_MAX_ALIASES;

  let events: Event[];
  try {
    events = parseEvents(text, { filename, maxDepth });
  } catch (err) {
    throw toYamlError(err, filename);
  }
  const scan = new EventScan(text, filename, lines, {
    maxDepth,
    maxAliases,
    maxAliasNodes: opts.maxAliasNodes ?? DEFAULT_MAX_ALIAS_NODES,
  });
  const roots = scan.run(events);

  let all: unknown[];
  try {
    // CORE_SCHEMA: YAML 1.2 scalars only (no `<<` merge keys, no timestamps, `yes` is a string).
    all = constructFromEvents(events, { source: text, filename, schema: CORE_SCHEMA, maxAliases });
  } catch (err) {
    throw toYamlError(err, filename);
  }

  const docs: unknown[] = [];
  const keptRoots: Slot[] = [];
  all.forEach((doc, i) => {
    const root = roots[i];
    if (root === EMPTY_DOCUMENT || root === undefined) return;
    docs.push(doc);
    keptRoots.push(root);
  });
  return {
    docs,
    lineOf(docIndex: number, path: string): number | undefined {
      const root = keptRoots[docIndex];
      if (root === undefined) return undefined;
      return findLine(root, path, 0, true, new Map());
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The line map: a tree shaped like the document. A leaf is just its line number; a collection keeps
// its children. An alias shares the anchored node's subtree, so the map is never larger than the input.

/** A key's or list item's line (0: unknown), with the subtree of its value when that is a collection. */
type Slot = number | Branch;
interface Branch {
  readonly line: number;
  readonly node: TreeNode;
}
/** A mapping (Map) or a sequence (array). */
type TreeNode = Map<string, Slot> | Slot[];

/** Marks a document that holds nothing (e.g. after a trailing `---`): it is dropped. */
const EMPTY_DOCUMENT = -1;

function slotLine(slot: Slot): number | undefined {
  const line = typeof slot === 'number' ? slot : slot.line;
  return line > 0 ? line : undefined;
}

/**
 * Follows `path` from `pos`. A key may contain `.` or `[`, so each place where the next key could end
 * is tried; `failed` remembers dead ends so that a crafted document cannot make this exponential.
 */
function findLine(
  slot: Slot,
  path: string,
  pos: number,
  atRoot: boolean,
  failed: Map<TreeNode, Set<number>>,
): number | undefined {
  if (pos === path.length) return slotLine(slot);
  if (typeof slot === 'number') return undefined;
  const node = slot.node;
  const dead = failed.get(node);
  if (dead?.has(pos)) return undefined;
  let found: number | undefined;
  if (Array.isArray(node)) {
    const m = /^\[(\d+)\]/.exec(path.slice(pos, pos + 24));
    const item = m === null ? undefined : node[Number(m[1])];
    if (m !== null && item !== undefined) found = findLine(item, path, pos + m[0].length, false, failed);
  } else {
    let start = pos;
    if (!atRoot) {
      if (path[pos] !== '.') return undefined;
      start = pos + 1;
    }
    for (let end = start + 1; end <= path.length && found === undefined; end++) {
      if (end < path.length && path[end] !== '.' && path[end] !== '[') continue;
      const child = node.get(path.slice(start, end));
      if (child !== undefined) found = findLine(child, path, end, false, failed);
    }
  }
  if (found === undefined) {
    if (dead) dead.add(pos);
    else failed.set(node, new Set([pos]));
  }
  return found;
}

/** Offset -> 1-based line, by binary search over the offsets where lines start. */
class LineIndex {
  private readonly starts: Uint32Array;

  constructor(text: string) {
    let count = 1;
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) count++;
    this.starts = new Uint32Array(count);
    let n = 1;
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) this.starts[n++] = i + 1;
  }

  /** 0 for an absent offset (-1), as js-yaml marks it. */
  lineAt(offset: number): number {
    if (offset < 0) return 0;
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  }
}

function toYamlError(err: unknown, filename: string): Error {
  if (err instanceof YAMLException) {
    const line = err.mark === undefined ? undefined : err.mark.line + 1;
    return new YamlError(filename, line, err.reason);
  }
  return err instanceof Error ? err : new Error(String(err));
}

// ---------------------------------------------------------------------------------------------
// The scan: one pass over the events, building the line map and enforcing the alias limits.

interface Anchor {
  /** Nodes the anchored value stands for once every alias inside it is expanded. */
  size: number;
  /** Collections nested in it, itself included (0 for a scalar). */
  height: number;
  /** Still open: an alias to it would make a cycle. */
  open: boolean;
  slotNode: TreeNode | undefined;
}

interface Frame {
  readonly node: TreeNode;
  readonly line: number;
  readonly anchor: Anchor | undefined;
  size: number;
  height: number;
  /** In a mapping: the key whose value comes next (undefined when a key comes next). */
  key: { name: string | undefined; line: number } | undefined;
}

interface ScanLimits {
  readonly maxDepth: number;
  readonly maxAliases: number;
  readonly maxAliasNodes: number;
}

class EventScan {
  private stack: Frame[] = [];
  private anchors = new Map<string, Anchor>();
  private aliases = 0;
  private aliasNodes = 0;
  /** One root per document, in event order; EMPTY_DOCUMENT for empty ones. */
  private roots: Slot[] = [];
  private root: Slot | undefined;

  constructor(
    private readonly text: string,
    private readonly filename: string,
    private readonly lines: LineIndex,
    private readonly limits: ScanLimits,
  ) {}

  run(events: readonly Event[]): Slot[] {
    for (const ev of events) {
      switch (ev.type) {
        case EVENT_ID.DOCUMENT:
          this.anchors = new Map();
          this.aliases = 0;
          this.aliasNodes = 0;
          this.root = undefined;
          break;
        case EVENT_ID.MAPPING:
        case EVENT_ID.SEQUENCE: {
          const line = this.lines.lineAt(firstOffset(ev.anchorStart, ev.tagStart, ev.start));
          const top = this.stack[this.stack.length - 1];
          // js-yaml would refuse it too, but at line 1; plain-object mappings cannot hold such keys.
          if (top !== undefined && !Array.isArray(top.node) && top.key === undefined) {
            this.fail(line, 'a mapping key must be a scalar, not a collection');
          }
          const anchor =
            ev.anchorStart >= 0
              ? this.defineAnchor(ev.anchorStart, ev.anchorEnd, { size: 0, height: 0, open: true, slotNode: undefined })
              : undefined;
          const node: TreeNode = ev.type === EVENT_ID.MAPPING ? new Map() : [];
          if (anchor) anchor.slotNode = node;
          this.stack.push({ node, line, anchor, size: 1, height: 1, key: undefined });
          break;
        }
        case EVENT_ID.SCALAR:
          this.scalar(ev);
          break;
        case EVENT_ID.ALIAS:
          this.alias(ev.anchorStart, ev.anchorEnd);
          break;
        case EVENT_ID.POP: {
          const frame = this.stack.pop();
          if (frame === undefined) {
            this.roots.push(this.root ?? EMPTY_DOCUMENT);
            break;
          }
          if (frame.anchor) {
            frame.anchor.size = frame.size;
            frame.anchor.height = frame.height;
            frame.anchor.open = false;
          }
          this.place({ line: frame.line, node: frame.node }, frame.size, frame.height);
          break;
        }
      }
    }
    return this.roots;
  }

  private scalar(ev: ScalarEvent): void {
    const line = this.lines.lineAt(firstOffset(ev.anchorStart, ev.tagStart, ev.valueStart));
    if (ev.anchorStart >= 0) {
      this.defineAnchor(ev.anchorStart, ev.anchorEnd, { size: 1, height: 0, open: false, slotNode: undefined });
    }
    const top = this.stack[this.stack.length - 1];
    if (top !== undefined && !Array.isArray(top.node) && top.key === undefined) {
      top.key = { name: getScalarValue(this.text, ev), line };
      top.size += 1;
      return;
    }
    if (top === undefined && ev.valueStart < 0 && ev.anchorStart < 0 && ev.tagStart < 0) {
      this.root = EMPTY_DOCUMENT;
      return;
    }
    this.place(line, 1, 0);
  }

  private alias(anchorStart: number, anchorEnd: number): void {
    const name = this.text.slice(anchorStart, anchorEnd);
    // The offsets point at the name; the `*` before it is on the same line.
    const line = this.lines.lineAt(anchorStart);
    if (this.limits.maxAliases >= 0 && ++this.aliases > this.limits.maxAliases) {
      this.fail(line, `too many aliases: more than ${this.limits.maxAliases} in one document`);
    }
    const anchor = this.anchors.get(name);
    if (anchor === undefined) this.fail(line, `unknown alias *${name}`);
    if (anchor.open) this.fail(line, `alias *${name} refers to a node that contains it (a cycle)`);
    this.aliasNodes += anchor.size;
    if (this.aliasNodes > this.limits.maxAliasNodes) {
      this.fail(
        line,
        `aliases expand to more than ${this.limits.maxAliasNodes} nodes in one document (an alias bomb?)`,
      );
    }
    // Counted as parseEvents counts: the document level, the open collections, the anchored ones, a scalar.
    if (1 + this.stack.length + anchor.height + 1 > this.limits.maxDepth) {
      this.fail(line, `nesting through alias *${name} exceeded maxDepth (${this.limits.maxDepth})`);
    }
    const top = this.stack[this.stack.length - 1];
    if (top !== undefined && !Array.isArray(top.node) && top.key === undefined) {
      // An aliased key: allowed, but it has no path of its own, so the value gets no line.
      top.key = { name: undefined, line };
      top.size += anchor.size;
      return;
    }
    this.place(anchor.slotNode ? { line, node: anchor.slotNode } : line, anchor.size, anchor.height);
  }

  private place(slot: Slot, size: number, height: number): void {
    const top = this.stack[this.stack.length - 1];
    if (top === undefined) {
      this.root = slot;
      return;
    }
    top.size += size;
    if (height + 1 > top.height) top.height = height + 1;
    if (Array.isArray(top.node)) {
      top.node.push(slot);
      return;
    }
    const key = top.key!;
    top.key = undefined;
    // The key's line, not the value's: `maxSizeMb: ten` is reported where `maxSizeMb` is.
    // A duplicate key keeps its first line; the constructor rejects duplicates anyway.
    if (key.name !== undefined && !top.node.has(key.name)) {
      top.node.set(key.name, typeof slot === 'number' ? key.line : { line: key.line, node: slot.node });
    }
  }

  private defineAnchor(start: number, end: number, anchor: Anchor): Anchor {
    // Redefining an anchor is legal YAML: later aliases refer to the latest definition.
    this.anchors.set(this.text.slice(start, end), anchor);
    return anchor;
  }

  private fail(line: number, reason: string): never {
    throw new YamlError(this.filename, line > 0 ? line : undefined, reason);
  }
}

/** The first present offset: a node's anchor or tag comes before its value. */
function firstOffset(...offsets: number[]): number {
  let first = -1;
  for (const o of offsets) if (o >= 0 && (first < 0 || o < first)) first = o;
  return first;
}
