/**
 * Text of the git fast-import commands gitroot sends (see git-fast-import(1)). Pure
 * formatting: commit-tree.ts streams file contents between these pieces.
 */

/**
 * C-style quote a path for a fast-import `M` line: always in double quotes, with `\\`,
 * `\"`, `\n`, `\t` and other control bytes as `\ooo`; UTF-8 stays as it is.
 */
export function quotePath(path: string): string {
  let out = '"';
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 0x5c) out += '\\\\';
    else if (c === 0x22) out += '\\"';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x09) out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\' + c.toString(8).padStart(3, '0');
    else out += path[i];
  }
  return out + '"';
}

/** `data` header for `bytes` of raw content that follow. */
export function dataHeader(bytes: number): string {
  return `data ${bytes}\n`;
}

/** Start of a blob: the content (`size` bytes) follows right after. */
export function blobHeader(mark: number, size: number): string {
  return `blob\nmark :${mark}\n${dataHeader(size)}`;
}

/** What a commit command needs. Idents are `Name <email> <seconds> <+zzzz>`. */
export interface CommitHeader {
  branch: string;
  mark: number;
  author: string;
  committer: string;
  message: string;
  parent: string | null;
}

/** The commit command up to and including `deleteall`; file lines follow. */
export function commitHeader(c: CommitHeader): string {
  const message = c.message.endsWith('\n') ? c.message : c.message + '\n';
  return (
    `commit refs/heads/${c.branch}\n` +
    `mark :${c.mark}\n` +
    `author ${c.author}\n` +
    `committer ${c.committer}\n` +
    dataHeader(Buffer.byteLength(message)) +
    message +
    (c.parent ? `from ${c.parent}\n` : '') +
    'deleteall\n'
  );
}

/** A file of the new tree, its content given earlier as blob `mark`. */
export function fileLine(gitMode: number, mark: number, path: string): string {
  return `M ${gitMode.toString(8)} :${mark} ${quotePath(path)}\n`;
}

/** A symlink of the new tree, its target inline. */
export function symlinkLines(path: string, target: string): string {
  return `M 120000 inline ${quotePath(path)}\n${dataHeader(Buffer.byteLength(target))}${target}\n`;
}
