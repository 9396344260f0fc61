/** `gitroot diff A B`: files added, removed and changed between two revisions, with sizes. */
import type { Command } from 'commander';
import { ObjectStore } from '../../store/object-store.js';
import { resolveRevision } from '../../store/refs.js';
import { diffCommits, type FileChange } from '../../diff/tree-diff.js';
import { printJson, printLine } from '../output.js';
import { addJsonOption } from '../cli-options.js';

const MARK = { added: 'A', removed: 'D', changed: 'M' } as const;

function describe(c: FileChange): string {
  const mode = (m: number | null) => (m === null ? '' : m.toString(8));
  const sizes =
    c.kind === 'added'
      ? `${c.newSize} bytes`
      : c.kind === 'removed'
        ? `${c.oldSize} bytes`
        : c.oldSize === c.newSize && c.oldMode !== c.newMode
          ? `mode ${mode(c.oldMode)} -> ${mode(c.newMode)}`
          : `${c.oldSize} -> ${c.newSize} bytes`;
  return `${MARK[c.kind]}  ${c.path}  (${sizes})`;
}

export function registerDiff(program: Command): void {
  const cmd = program
    .command('diff')
    .description('show the files added, removed and changed between two revisions, with their sizes')
    .argument('<from>', 'older revision (SHA, branch or tag)')
    .argument('<to>', 'newer revision (SHA, branch or tag)')
    .requiredOption('--repo <gitdir>', 'git directory holding both revisions')
    .option('--stat', 'print only the totals');
  addJsonOption(cmd, 'the changes and totals').action((from: string, to: string, opts: { repo: string; stat?: boolean; json?: boolean }) => {
    const store = ObjectStore.open(opts.repo);
    try {
      const a = resolveRevision(opts.repo, from, store);
      const b = resolveRevision(opts.repo, to, store);
      const d = diffCommits(store, a, b);
      if (opts.json) return printJson(opts.stat ? { from: a, to: b, summary: d.summary } : d);
      if (!opts.stat) for (const c of d.changes) printLine(describe(c));
      const s = d.summary;
      printLine(
        `${s.added + s.removed + s.changed} files changed: ${s.added} added, ${s.removed} removed, ${s.changed} changed (${s.bytesAdded} bytes in the new files, ${s.bytesRemoved} in the old)`,
      );
    } finally {
      store.close();
    }
  });
}
