/**
 * Boot Loader Specification type #1 backend (systemd-boot, and any loader reading
 * `$BOOT/loader/entries/*.conf`). The pending revision's entry is
 * `gitroot-<sha12>+<tries>.conf`: systemd-boot counts its tries down by renaming it
 * (`+2-1`, ...), sorts an entry with no tries left after the others, and systemd-bless-boot
 * drops the counter after a complete boot. The fallback entry is `gitroot-<sha12>.conf`.
 * `loader.conf` gets `default gitroot-*`: with the sort keys (`gitroot-0` pending,
 * `gitroot-1` fallback) that selects the pending entry while it has tries and the fallback
 * once they are used up; a pattern naming the pending entry alone would keep booting it after
 * its tries are gone, because systemd-boot's `default` match ignores the counter.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, fsyncDir, removeAtomicTemps } from '../fsutil/atomic-write.js';
import { ensureDirDurable } from '../fsutil/durable-dir.js';
import { step } from '../fsutil/named-step.js';
import { type BootEntry, type BootPlan, type KernelLocation, optionsRevision } from './boot-plan.js';
import { findTemplateDir, loadTemplate, renderTemplate } from './boot-templates.js';
import {
  type Bootloader,
  type BootloaderOptions,
  type InstalledEntries,
  type InstalledEntry,
  type WriteEntriesOptions,
  kernelLocation,
  removeStaleCopies,
  requireBootDir,
  syncKernelCopies,
} from './bootloader.js';

/** The loader.conf `default` pattern gitroot writes. */
export const BLS_DEFAULT_PATTERN = 'gitroot-*';

/** A parsed entry file name: `gitroot-<hex>[+LEFT[-DONE]].conf`. */
export interface BlsFileName {
  id: string;
  tries: { left: number; done: number } | null;
}

/** Parses a gitroot entry file name; null for anything else. */
export function parseBlsFileName(file: string): BlsFileName | null {
  const m = /^(gitroot-[0-9a-f]{12})(?:\+(\d+)(?:-(\d+))?)?\.conf$/.exec(file);
  if (m === null) return null;
  return { id: m[1], tries: m[2] === undefined ? null : { left: Number(m[2]), done: m[3] === undefined ? 0 : Number(m[3]) } };
}

/** File name of a new entry. */
export function blsFileName(entry: BootEntry): string {
  return entry.tries === null ? `${entry.id}.conf` : `${entry.id}+${entry.tries}.conf`;
}

/** Parses the `key value` lines of an entry (or of loader.conf); `#` comments and blank lines skipped. */
export function parseBlsKeys(text: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (m !== null && !keys.has(m[1])) keys.set(m[1], m[2]);
  }
  return keys;
}

/** Renders one entry file from the template (pure). */
export function renderBlsEntry(template: string, entry: BootEntry): string {
  return renderTemplate(
    template,
    {
      TITLE: entry.title,
      VERSION: entry.version,
      SORT_KEY: entry.sortKey,
      LINUX: entry.linux,
      INITRD: entry.initrd,
      OPTIONS: entry.options,
      REVISION: entry.revision,
    },
    'bls-entry.conf.in',
  );
}

/**
 * loader.conf with `default` set to `pattern` (pure): an existing file keeps every other line
 * (timeout, console-mode, ...) and gets its `default` line replaced or added; with no file,
 * the template.
 */
export function updateLoaderConf(existing: string | null, template: string, pattern: string): string {
  if (existing === null) return renderTemplate(template, { DEFAULT: pattern }, 'loader.conf.in');
  const out: string[] = [];
  let found = false;
  for (const line of existing.split('\n')) {
    if (/^\s*default(\s|$)/.test(line)) {
      if (!found) out.push(`default ${pattern}`);
      found = true;
      continue;
    }
    out.push(line);
  }
  if (!found) out.splice(out.length > 0 && out[out.length - 1] === '' ? out.length - 1 : out.length, 0, `default ${pattern}`);
  return out.join('\n');
}

/** The BLS backend. */
export class BlsBootloader implements Bootloader {
  readonly name = 'bls' as const;
  readonly location: KernelLocation;
  private readonly bootDir: string;
  private readonly homeDir: string;
  private readonly templateDir: string;

  constructor(opts: BootloaderOptions) {
    this.bootDir = requireBootDir('bls', opts);
    this.homeDir = opts.homeDir;
    this.templateDir = findTemplateDir(opts.templateDir);
    this.location = kernelLocation(opts.homeDir, this.bootDir, opts.pathPrefix);
  }

  /** `$BOOT/loader/entries`. */
  get entriesDir(): string {
    return join(this.bootDir, 'loader', 'entries');
  }

  /** `$BOOT/loader/loader.conf`. */
  get loaderConf(): string {
    return join(this.bootDir, 'loader', 'loader.conf');
  }

  writeEntries(plan: BootPlan, opts: WriteEntriesOptions = {}): void {
    if (plan.entries.length === 0 && opts.allowEmpty !== true) return;
    const entryTemplate = loadTemplate(this.templateDir, 'bls-entry.conf.in');
    const loaderTemplate = loadTemplate(this.templateDir, 'loader.conf.in');
    step('copy kernels to the boot directory', () => syncKernelCopies(this.homeDir, this.bootDir, plan));
    const dir = this.entriesDir;
    const keep = new Set<string>();
    step('write boot entries', () => {
      ensureDirDurable(dir);
      const existing = this.entryFiles();
      for (const entry of plan.entries) {
        const content = renderBlsEntry(entryTemplate, entry);
        const same = existing.filter((f) => f.name.id === entry.id);
        // An existing file keeps its name: systemd-boot owns the counter once the file exists (and
        // systemd-bless-boot drops it after a complete boot). Only a fallback entry still carrying a
        // counter is rewritten under the plain name, so that it is never sorted away as bad.
        const reuse = entry.tries === null ? same.find((f) => f.name.tries === null) : (same.find((f) => f.name.tries !== null) ?? same[0]);
        const file = reuse?.file ?? blsFileName(entry);
        keep.add(file);
        const path = join(dir, file);
        if (!existsSync(path) || readFileSync(path, 'utf8') !== content) writeFileAtomic(path, content);
      }
    });
    if (plan.entries.length > 0)
      step('write loader.conf', () => {
        const conf = this.loaderConf;
        const old = existsSync(conf) ? readFileSync(conf, 'utf8') : null;
        const next = updateLoaderConf(old, loaderTemplate, BLS_DEFAULT_PATTERN);
        if (next !== old) writeFileAtomic(conf, next);
        removeAtomicTemps(join(this.bootDir, 'loader'), 'loader.conf');
      });
    step('remove old boot entries', () => {
      let removed = false;
      if (!existsSync(dir)) return;
      for (const file of readdirSync(dir)) {
        const ours = parseBlsFileName(file) !== null || /^\.gitroot-[0-9a-f]{12}.*\.tmp-/.test(file);
        if (ours && !keep.has(file)) {
          rmSync(join(dir, file), { force: true });
          removed = true;
        }
      }
      if (removed) fsyncDir(dir);
    });
    step('remove old kernel copies', () => removeStaleCopies(this.bootDir, plan));
  }

  private entryFiles(): { file: string; name: BlsFileName }[] {
    if (!existsSync(this.entriesDir)) return [];
    return readdirSync(this.entriesDir).flatMap((file) => {
      const name = parseBlsFileName(file);
      return name === null ? [] : [{ file, name }];
    });
  }

  readEntries(): InstalledEntries {
    const entries: InstalledEntry[] = this.entryFiles().map(({ file, name }) => {
      const keys = parseBlsKeys(readFileSync(join(this.entriesDir, file), 'utf8'));
      const options = keys.get('options') ?? null;
      const rev = options === null ? null : optionsRevision(options);
      return {
        id: name.id,
        file: join(this.entriesDir, file),
        revision: rev,
        title: keys.get('title') ?? null,
        linux: keys.get('linux') ?? null,
        initrd: keys.get('initrd') ?? null,
        options,
        tries: name.tries,
      };
    });
    entries.sort((a, b) => a.file.localeCompare(b.file));
    const conf = existsSync(this.loaderConf) ? parseBlsKeys(readFileSync(this.loaderConf, 'utf8')) : null;
    return { entries, defaultId: conf?.get('default') ?? null };
  }
}
