// The tokens file (meshaudit.auth.tokensFile): who may call with a bearer token. It holds hashes only
// (src/auth/tokens.ts), is written by `meshaudit token`, and must not be readable by group or others:
// a hash does not give the token back, but its names and groups are the map of who may change rules.
//
//   # meshaudit tokens: written by `meshaudit token`; holds SHA-256 hashes only.
//   tokens:
//   - name: ci-deployer
//     groups: [mesh-system:admin]
//     sha256: 4f1c...
//   - name: zone-1-cp
//     groups: [mesh-system:control-plane]
//     zones: [zone-1]
//     sha256: 9a0b...
import * as fs from 'node:fs';
import { isTokenHash, type TokenEntry } from '../auth/tokens';
import { MeshauditError } from '../errors';
import { byLine, field, formatViolation, index, mustBe, quote, unknownField, Violations } from '../validators';
import { readTextFile, UnusableFileError } from './read-file';
import { parseYamlDocuments, YamlError } from './yaml';

/** A tokens file of a thousand entries is about 200 KiB. */
export const TOKENS_FILE_BYTES = 1024 * 1024;
/** A token's name: what records and logs call its holder. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,252}$/;
const ENTRY_KEYS = ['name', 'groups', 'zones', 'sha256'];

/** The tokens file cannot be used; the message names the file (and the line). Exit 2 at start-up. */
export class TokensFileError extends MeshauditError {
  readonly kind = 'invalid-argument';
  override readonly exitCode = 2;
}

/** The entries of `file`; a file that does not exist holds none (`meshaudit token add` creates it). */
export function readTokensFile(file: string, opts: { mustExist: boolean } = { mustExist: true }): TokenEntry[] {
  if (!opts.mustExist && !fs.existsSync(file)) return [];
  let text: string;
  try {
    text = readTextFile(file, TOKENS_FILE_BYTES, { secret: true });
  } catch (e) {
    if (e instanceof UnusableFileError) throw new TokensFileError(`can't read tokens file ${file}: ${e.message}`);
    throw e;
  }
  return parseTokens(text, file);
}

/** Parses the text of a tokens file; `source` names it in messages. */
export function parseTokens(text: string, source: string): TokenEntry[] {
  let docs: unknown[];
  let lineOf: (doc: number, path: string) => number | undefined;
  try {
    const parsed = parseYamlDocuments(text, { filename: source });
    docs = parsed.docs;
    lineOf = (doc, path) => parsed.lineOf(doc, path);
  } catch (e) {
    if (e instanceof YamlError) throw new TokensFileError(e.message);
    throw e;
  }
  const v = new Violations({ source, lineOf: (path) => lineOf(0, path) });
  if (docs.length > 1) v.add('', 'holds more than one YAML document; a tokens file is one');
  const root = docs[0] ?? { tokens: [] };
  const tokens = isMapping(root) ? root.tokens : undefined;
  if (!isMapping(root)) v.add('', mustBe('a mapping with `tokens`', root));
  else {
    for (const key of Object.keys(root)) if (key !== 'tokens') v.add(key, unknownField(key, ['tokens']));
    if (tokens !== undefined && tokens !== null && !Array.isArray(tokens)) v.add('tokens', mustBe('a list', tokens));
  }
  const out: TokenEntry[] = [];
  const names = new Set<string>();
  for (const [i, raw] of (Array.isArray(tokens) ? tokens : []).entries()) {
    const at = index('tokens', i);
    if (!isMapping(raw)) {
      v.add(at, mustBe('a mapping', raw));
      continue;
    }
    for (const key of Object.keys(raw))
      if (!ENTRY_KEYS.includes(key)) v.add(field(at, key), unknownField(key, ENTRY_KEYS));
    const { name, groups, zones, sha256 } = raw;
    if (typeof name !== 'string' || !NAME.test(name))
      v.add(field(at, 'name'), mustBe('a name of letters, digits and ._:@/-', name));
    else if (names.has(name)) v.add(field(at, 'name'), `${quote(name)} is there twice`);
    else names.add(name);
    const groupList = stringList(v, field(at, 'groups'), groups, true);
    const zoneList = zones === undefined ? undefined : stringList(v, field(at, 'zones'), zones, true);
    if (typeof sha256 !== 'string' || !isTokenHash(sha256))
      v.add(field(at, 'sha256'), mustBe('64 lowercase hex digits', sha256));
    if (typeof name === 'string' && groupList && typeof sha256 === 'string') {
      out.push({ name, groups: groupList, ...(zoneList === undefined ? {} : { zones: zoneList }), sha256 });
    }
  }
  if (!v.isEmpty) throw new TokensFileError(byLine(v.list).map(formatViolation).join('\n'));
  return out;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringList(v: Violations, at: string, value: unknown, nonEmpty: boolean): string[] | undefined {
  if (!Array.isArray(value) || (nonEmpty && value.length === 0)) {
    v.add(at, mustBe('a non-empty list of names', value));
    return undefined;
  }
  const bad = value.findIndex((g) => typeof g !== 'string' || g === '');
  if (bad >= 0) {
    v.add(index(at, bad), mustBe('a name', value[bad]));
    return undefined;
  }
  return value as string[];
}

/** The text of a tokens file holding `entries`. */
export function formatTokens(entries: readonly TokenEntry[]): string {
  const list = (xs: readonly string[]): string => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  let text = '# meshaudit tokens: written by `meshaudit token`; holds SHA-256 hashes only.\ntokens:\n';
  if (entries.length === 0) return `${text.slice(0, -1)} []\n`;
  for (const e of entries) {
    text += `- name: ${JSON.stringify(e.name)}\n  groups: ${list(e.groups)}\n`;
    if (e.zones !== undefined) text += `  zones: ${list(e.zones)}\n`;
    text += `  sha256: ${e.sha256}\n`;
  }
  return text;
}
