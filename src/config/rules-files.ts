// AccessAudit resources from YAML files (--rules): either form of the spec, multi-document. Every
// problem of every file is reported at once, each with its file and line, in the files' order and,
// within a file, by line (as configuration errors are).
import * as fs from 'node:fs';
import { parseAccessAudit } from '../rules';
import type { AccessAudit } from '../rules';
import { parseYamlDocuments, YamlError } from './yaml';

export class RulesFileError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
  }
}

export interface LoadedAudits {
  audits: AccessAudit[];
  /** Warnings with file and line, e.g. a rule that covers no action. */
  warnings: string[];
}

/** A message and the line it concerns (undefined: the whole input), for sorting. */
interface Located {
  line: number | undefined;
  text: string;
}

/** What one YAML text holds: the valid audits with where their names are, and every problem. */
interface ParsedText {
  audits: Array<{ audit: AccessAudit; nameField: string; nameLine: number | undefined }>;
  problems: Located[];
  warnings: Located[];
}

/** Parses AccessAudit YAML text; `source` names it in messages. Throws RulesFileError. */
export function parseAccessAuditYaml(text: string, source: string, knownTypes: ReadonlySet<string>): LoadedAudits {
  const parsed = parseText(text, source, knownTypes);
  if (parsed.problems.length > 0) throw new RulesFileError(byLine(parsed.problems));
  return { audits: parsed.audits.map((a) => a.audit), warnings: byLine(parsed.warnings) };
}

/**
 * Loads every file; a name defined twice (in one file or across files) is an error at the second
 * definition, naming the first: `rules.yaml:9: name: AccessAudit "a" is defined twice (first at rules.yaml:2)`.
 */
export function loadAccessAuditFiles(files: readonly string[], knownTypes: ReadonlySet<string>): LoadedAudits {
  const problems: string[] = [];
  const out: LoadedAudits = { audits: [], warnings: [] };
  /** name -> `file:line` of its first definition. */
  const firstAt = new Map<string, string>();
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      problems.push(`cannot read rules file ${file}: ${(e as Error).message}`);
      continue;
    }
    const parsed = parseText(text, file, knownTypes);
    // The valid documents of a file with problems are still checked for names defined twice.
    for (const { audit, nameField, nameLine } of parsed.audits) {
      const here = place(file, nameLine);
      const first = firstAt.get(audit.name);
      if (first === undefined) firstAt.set(audit.name, here);
      else
        parsed.problems.push({
          line: nameLine,
          text: `${here}: ${nameField}: AccessAudit "${audit.name}" is defined twice (first at ${first})`,
        });
      out.audits.push(audit);
    }
    problems.push(...byLine(parsed.problems));
    out.warnings.push(...byLine(parsed.warnings));
  }
  if (problems.length > 0) throw new RulesFileError(problems);
  return out;
}

function parseText(text: string, source: string, knownTypes: ReadonlySet<string>): ParsedText {
  const out: ParsedText = { audits: [], problems: [], warnings: [] };
  let parsed;
  try {
    parsed = parseYamlDocuments(text, { filename: source });
  } catch (e) {
    if (e instanceof YamlError) out.problems.push({ line: e.line, text: e.message });
    else out.problems.push({ line: undefined, text: `${source}: ${(e as Error).message}` });
    return out;
  }
  // A problem with a whole document has an empty field path: then only the document's place is named.
  const located = (doc: number, field: string, description: string): Located => {
    const line = parsed.lineOf(doc, field);
    const where = place(source, line);
    return { line, text: `${field === '' ? where : `${where}: ${field}`}: ${description}` };
  };
  parsed.docs.forEach((doc, i) => {
    const res = parseAccessAudit(doc, { knownTypes });
    for (const v of res.violations) out.problems.push(located(i, v.field, v.description));
    for (const w of res.warnings) out.warnings.push(located(i, w.field, w.description));
    if (res.audit && res.violations.length === 0) {
      // A valid audit has its name in exactly one place: `metadata.name` (Kubernetes form) or `name`.
      const nameField = parsed.lineOf(i, 'metadata.name') === undefined ? 'name' : 'metadata.name';
      out.audits.push({ audit: res.audit, nameField, nameLine: parsed.lineOf(i, nameField) });
    }
  });
  return out;
}

function place(source: string, line: number | undefined): string {
  return line === undefined ? source : `${source}:${line}`;
}

/** Stable sort: the file's own order among equal lines; messages without a line go last. */
function byLine(messages: readonly Located[]): string[] {
  return [...messages].sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity)).map((m) => m.text);
}
