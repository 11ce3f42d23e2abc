// Every link of the docs leads somewhere: in README.md and docs/*.md, each relative Markdown link
// (`[text](path)`, `[text]: path`) and each backticked path that names a repository file (`docs/x.md`,
// `deploy/...`, `bench/README.md`, `src/...`, `proto/...`, `test/...`) must exist in the repository.
// Markdown links are resolved against the file that holds them, as GitHub renders them (the same as
// the repository root for README.md); backticked paths against the repository root. Anchors
// (`#section`, and the `#...` of `path#section`) and links with a scheme (http, https, mailto) are
// not checked. Fenced code blocks are skipped: what they hold is commands and output, not references.
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The repository root: this file runs as dist/test/readme-links.test.js. */
const ROOT = path.resolve(__dirname, '../../..');

/** One reference of a Markdown file to a path of the repository. */
interface Reference {
  /** The Markdown file, relative to the repository root. */
  readonly file: string;
  readonly line: number;
  /** As written: `docs/protocol.md#the-event`, `src/pipeline/writer.ts`. */
  readonly target: string;
  /** Absolute path it names. */
  readonly resolved: string;
}

/** `[text](target)` or `[text](target "title")`; also matches the `[alt](src)` of an image. */
const INLINE_LINK = /\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g;
/** `[label]: target` on a line of its own (a reference-style link definition). */
const LINK_DEFINITION = /^\s{0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?/;
/** A code span without spaces: a path, if it looks like one of the repository's. */
const CODE_SPAN = /`([^`\s]+)`/g;
const REPOSITORY_PATH =
  /^(?:docs\/[\w./-]+\.md|deploy\/[\w./-]+|bench\/README\.md|src\/[\w./-]+|proto\/[\w./-]+|test\/[\w./-]+)$/;
/** `https:`, `mailto:`...: not a path. */
const SCHEME = /^[a-z][a-z0-9+.-]*:/i;
const FENCE = /^\s*(```|~~~)/;

/** The Markdown files whose links are checked, relative to the root: README.md and docs/*.md. */
function markdownFiles(root: string): string[] {
  const docs = fs.existsSync(path.join(root, 'docs'))
    ? fs
        .readdirSync(path.join(root, 'docs'))
        .filter((f) => f.endsWith('.md'))
        .sort()
        .map((f) => `docs/${f}`)
    : [];
  return ['README.md', ...docs];
}

/** The links and backticked repository paths of `text`, the Markdown file `file` (relative to `root`). */
function referencesOf(root: string, file: string, text: string): { links: Reference[]; paths: Reference[] } {
  const links: Reference[] = [];
  const paths: Reference[] = [];
  let fenced = false;
  text.split('\n').forEach((content, i) => {
    if (FENCE.test(content)) {
      fenced = !fenced;
      return;
    }
    if (fenced) return;
    const line = i + 1;
    const targets = [...content.matchAll(INLINE_LINK)].map((m) => m[1]);
    const definition = LINK_DEFINITION.exec(content);
    if (definition !== null) targets.push(definition[1]);
    for (const target of targets) {
      if (target.startsWith('#') || SCHEME.test(target)) continue;
      const withoutAnchor = decodeURI(target.split('#')[0]);
      links.push({ file, line, target, resolved: path.resolve(root, path.dirname(file), withoutAnchor) });
    }
    // Code spans inside a link's text (`[`src/x.ts`](...)`) are paths too; the link is checked above.
    for (const m of content.matchAll(CODE_SPAN)) {
      if (REPOSITORY_PATH.test(m[1])) paths.push({ file, line, target: m[1], resolved: path.resolve(root, m[1]) });
    }
  });
  return { links, paths };
}

/** What a reference fails to name, as a reader would be told: `docs/x.md:12: ../READM.md: ...`. */
function broken(root: string, refs: readonly Reference[]): string[] {
  const out: string[] = [];
  for (const r of refs) {
    const where = `${r.file}:${r.line}: ${r.target}`;
    const relative = path.relative(root, r.resolved);
    if (relative.startsWith('..') || path.isAbsolute(relative)) out.push(`${where}: points outside the repository`);
    else if (!fs.existsSync(r.resolved)) out.push(`${where}: ${relative} does not exist`);
  }
  return out;
}

function allReferences(root: string): { links: Reference[]; paths: Reference[] } {
  const links: Reference[] = [];
  const paths: Reference[] = [];
  for (const file of markdownFiles(root)) {
    const found = referencesOf(root, file, fs.readFileSync(path.join(root, file), 'utf8'));
    links.push(...found.links);
    paths.push(...found.paths);
  }
  return { links, paths };
}

describe('the links of README.md and docs/*.md', () => {
  const { links, paths } = allReferences(ROOT);

  it('reads README.md and every docs/*.md, and finds their links and paths', () => {
    expect(markdownFiles(ROOT)).to.include.members([
      'README.md',
      'docs/protocol.md',
      'docs/durability.md',
      'docs/performance.md',
    ]);
    const targets = (refs: readonly Reference[]) => refs.map((r) => `${r.file} -> ${r.target}`);
    expect(targets(links)).to.include.members([
      'README.md -> docs/protocol.md',
      'README.md -> bench/README.md',
      'docs/performance.md -> ../bench/README.md',
    ]);
    expect(targets(paths)).to.include.members([
      'README.md -> deploy/examples/meshaudit.yaml',
      'docs/durability.md -> src/pipeline/writer.ts',
    ]);
  });

  it('every relative Markdown link names a file or folder of the repository', () => {
    expect(broken(ROOT, links)).to.deep.equal([]);
  });

  it('every backticked repository path (docs/, deploy/, bench/README.md, src/, proto/, test/) exists', () => {
    expect(broken(ROOT, paths)).to.deep.equal([]);
  });

  it('reports a broken link and a broken path with file and line, and skips anchors, web links and code blocks', () => {
    const root = ROOT;
    const text = [
      '# Doc',
      'See [the protocol](protocol.md#the-event), [up](../README.md) and [gone](missing.md).',
      '[anchor](#doc), [web](https://example.com/x.md), [mail](mailto:a@b.c), `src/nowhere.ts`, `src/cli/main.ts`.',
      '```sh',
      'cat docs/nothing.md `src/also-nowhere.ts` [x](nothing.md)',
      '```',
      '[ref]: ../deploy/none.yaml',
      '[escape](../../outside.md)',
    ].join('\n');
    const { links: l, paths: p } = referencesOf(root, 'docs/example.md', text);
    expect(l.map((r) => r.target)).to.deep.equal([
      'protocol.md#the-event',
      '../README.md',
      'missing.md',
      '../deploy/none.yaml',
      '../../outside.md',
    ]);
    expect(broken(root, l)).to.deep.equal([
      'docs/example.md:2: missing.md: docs/missing.md does not exist',
      'docs/example.md:7: ../deploy/none.yaml: deploy/none.yaml does not exist',
      'docs/example.md:8: ../../outside.md: points outside the repository',
    ]);
    expect(broken(root, p)).to.deep.equal(['docs/example.md:3: src/nowhere.ts: src/nowhere.ts does not exist']);
  });
});
