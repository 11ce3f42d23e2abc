// AccessAudit resources from YAML files (--rules): either form of the spec, multi-document. Every
// problem of every file is reported at once, each with its file and line.
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

/** Parses AccessAudit YAML text; `source` names it in messages. Throws RulesFileError. */
export function parseAccessAuditYaml(text: string, source: string, knownTypes: ReadonlySet<string>): LoadedAudits {
  let parsed;
  try {
    parsed = parseYamlDocuments(text, { filename: source });
  } catch (e) {
    throw new RulesFileError([e instanceof YamlError ? e.message : `${source}: ${(e as Error).message}`]);
  }
  const problems: string[] = [];
  const out: LoadedAudits = { audits: [], warnings: [] };
  // A problem with a whole document has an empty field path: then only the document's place is named.
  const at = (doc: number, field: string): string => {
    const line = parsed.lineOf(doc, field);
    const where = line === undefined ? source : `${source}:${line}`;
    return field === '' ? where : `${where}: ${field}`;
  };
  parsed.docs.forEach((doc, i) => {
    const res = parseAccessAudit(doc, { knownTypes });
    for (const v of res.violations) problems.push(`${at(i, v.field)}: ${v.description}`);
    for (const w of res.warnings) out.warnings.push(`${at(i, w.field)}: ${w.description}`);
    if (res.audit && res.violations.length === 0) out.audits.push(res.audit);
  });
  if (problems.length > 0) throw new RulesFileError(problems);
  return out;
}

/** Loads every file; a name defined twice (in one file or across files) is an error. */
export function loadAccessAuditFiles(files: readonly string[], knownTypes: ReadonlySet<string>): LoadedAudits {
  const problems: string[] = [];
  const out: LoadedAudits = { audits: [], warnings: [] };
  const seen = new Map<string, string>();
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      problems.push(`cannot read rules file ${file}: ${(e as Error).message}`);
      continue;
    }
    try {
      const loaded = parseAccessAuditYaml(text, file, knownTypes);
      for (const a of loaded.audits) {
        const first = seen.get(a.name);
        if (first !== undefined) problems.push(`${file}: AccessAudit "${a.name}" is defined twice (first in ${first})`);
        else seen.set(a.name, file);
        out.audits.push(a);
      }
      out.warnings.push(...loaded.warnings);
    } catch (e) {
      if (!(e instanceof RulesFileError)) throw e;
      problems.push(...e.problems);
    }
  }
  if (problems.length > 0) throw new RulesFileError(problems);
  return out;
}
