// AccessAudit resources from YAML: the --rules files, and the text of an ApplyAccessAudits call. Either
// form of the spec, multi-document. Every problem of every file is reported at once, each with its file
// (`source`) and line, in the files' order and, within a file, by line. What comes out is validated:
// the store takes it as it is.
import { parseAccessAudit } from '../rules';
import type { TypeRegistry, ValidAccessAudit } from '../rules';
import { byLine, InvalidArgumentError, type Violation } from '../validators';
import { defaultLimits } from './load';
import { readTextFile, UnusableFileError } from './read-file';
import type { Limits } from './types';
import { parseYamlDocuments, YamlError, yamlLimits } from './yaml';

/** The rules files (or an apply's YAML) hold violations; each names its file and line. */
export class RulesFileError extends InvalidArgumentError {
  override readonly name = 'RulesFileError';
}

export interface LoadedAudits {
  /** Validated and normalised: the store takes them without validating again. */
  audits: ValidAccessAudit[];
  /** Valid but probably not meant, e.g. a rule that covers no action; with file and line. */
  warnings: Violation[];
}

/** What one YAML text holds: the valid audits with where their names are, and every problem. */
interface ParsedText {
  audits: Array<{ audit: ValidAccessAudit; nameField: string; nameLine: number | undefined }>;
  violations: Violation[];
  warnings: Violation[];
}

/** The limits that YAML of AccessAudits is read with (meshaudit.limits). */
export type AccessAuditYamlLimits = Pick<
  Limits,
  'yamlBytes' | 'yamlDepth' | 'yamlAliases' | 'rulesPerAccessAudit' | 'accessAudits' | 'rulesFileBytes'
>;

/** Parses AccessAudit YAML text; `source` names it in violations. Throws RulesFileError. */
export function parseAccessAuditYaml(
  text: string,
  source: string,
  knownTypes: TypeRegistry,
  limits: AccessAuditYamlLimits = defaultLimits(),
): LoadedAudits {
  const parsed = parseText(text, source, knownTypes, limits);
  if (parsed.violations.length > 0) throw new RulesFileError(byLine(parsed.violations));
  return { audits: parsed.audits.map((a) => a.audit), warnings: byLine(parsed.warnings) };
}

/**
 * Loads every file; a name defined twice (in one file or across files) is an error at the second
 * definition, naming the first: `rules.yaml:9: name: AccessAudit "a" is defined twice (first at rules.yaml:2)`.
 */
export function loadAccessAuditFiles(
  files: readonly string[],
  knownTypes: TypeRegistry,
  limits: AccessAuditYamlLimits = defaultLimits(),
): LoadedAudits {
  const violations: Violation[] = [];
  const out: LoadedAudits = { audits: [], warnings: [] };
  /** name -> `file:line` of its first definition. */
  const firstAt = new Map<string, string>();
  for (const file of files) {
    let text: string;
    try {
      text = readTextFile(file, limits.rulesFileBytes);
    } catch (e) {
      if (!(e instanceof UnusableFileError)) throw e;
      // A file that could not be read is named in the message; one that was read is the source of the line.
      if (e.read) violations.push({ field: '', description: e.message, source: file });
      else violations.push({ field: '', description: `cannot read rules file ${file}: ${e.message}` });
      continue;
    }
    const parsed = parseText(text, file, knownTypes, limits);
    // The valid documents of a file with problems are still checked for names defined twice.
    for (const { audit, nameField, nameLine } of parsed.audits) {
      const here = nameLine === undefined ? file : `${file}:${nameLine}`;
      const first = firstAt.get(audit.name);
      if (first === undefined) firstAt.set(audit.name, here);
      else {
        parsed.violations.push(
          at(file, nameLine, nameField, `AccessAudit "${audit.name}" is defined twice (first at ${first})`),
        );
      }
      out.audits.push(audit);
    }
    // An empty file, or one read while an editor or a deploy was writing it, would delete every
    // resource it defined: refused like a broken file, so the rules in force stay.
    if (parsed.audits.length === 0 && parsed.violations.length === 0) {
      parsed.violations.push({
        field: '',
        description:
          'defines no AccessAudit (an empty or half-written file?); to drop the resources a file defined, ' +
          'restart without it among the --rules files, or delete them through the API',
        source: file,
      });
    }
    append(violations, byLine(parsed.violations));
    append(out.warnings, byLine(parsed.warnings));
  }
  // The store would refuse them too, but only at start-up: --check-config says it here, naming the key.
  if (violations.length === 0 && out.audits.length > limits.accessAudits) {
    violations.push({
      field: '',
      description: `the rules files define ${out.audits.length} AccessAudits: meshaudit.limits.accessAudits allows ${limits.accessAudits}`,
    });
  }
  if (violations.length > 0) throw new RulesFileError(violations);
  return out;
}

/**
 * Appends `items` to `to`. A loop, not push(...items): a file of 50,000 small documents has as many
 * violations, and spreading them as arguments overflowed the stack (start-up died with a RangeError).
 */
function append<T>(to: T[], items: readonly T[]): void {
  for (const item of items) to.push(item);
}

function at(source: string, line: number | undefined, field: string, description: string): Violation {
  return { field, description, source, ...(line === undefined ? {} : { line }) };
}

function parseText(text: string, source: string, knownTypes: TypeRegistry, limits: AccessAuditYamlLimits): ParsedText {
  const out: ParsedText = { audits: [], violations: [], warnings: [] };
  let parsed: ReturnType<typeof parseYamlDocuments>;
  try {
    parsed = parseYamlDocuments(text, { filename: source, ...yamlLimits(limits) });
  } catch (e) {
    if (e instanceof YamlError) out.violations.push(at(source, e.line, '', e.reason));
    else out.violations.push(at(source, undefined, '', (e as Error).message));
    return out;
  }
  parsed.docs.forEach((doc, i) => {
    // A problem with a whole document has an empty field path: it is located where the document starts.
    const located = (v: Violation): Violation => at(source, parsed.lineOf(i, v.field), v.field, v.description);
    const res = parseAccessAudit(doc, { knownTypes, maxRules: limits.rulesPerAccessAudit });
    append(out.violations, res.violations.map(located));
    append(out.warnings, res.warnings.map(located));
    if (res.audit && res.violations.length === 0) {
      // A valid audit has its name in exactly one place: `metadata.name` (Kubernetes form) or `name`.
      const nameField = parsed.lineOf(i, 'metadata.name') === undefined ? 'name' : 'metadata.name';
      out.audits.push({ audit: res.audit, nameField, nameLine: parsed.lineOf(i, nameField) });
    }
  });
  return out;
}
