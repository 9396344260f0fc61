/**
 * extlinux backend (syslinux's extlinux, and U-Boot's distro boot, which read
 * `$BOOT/extlinux/extlinux.conf`). gitroot writes the whole file from its templates, atomically:
 * the pending revision as DEFAULT and the known-good one as a second LABEL. extlinux has no
 * boot counting and no way to notice a failed boot (`extlinux --once` is one-shot only), so
 * the tries of the pending revision are counted by gitroot's initramfs in `D/state.json`,
 * which boots the good revision itself once they are used up; the second LABEL is for a
 * person at the menu and for a pending revision whose kernel does not boot at all.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, removeAtomicTemps } from '../fsutil/atomic-write.js';
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

/** Renders the whole extlinux.conf for `plan` (pure). */
export function renderExtlinuxConf(fileTemplate: string, entryTemplate: string, plan: BootPlan): string {
  const blocks = plan.entries.map((e: BootEntry) =>
    renderTemplate(
      entryTemplate,
      {
        ID: e.id,
        TITLE: e.title,
        LINUX: e.linux,
        INITRD: e.initrd,
        OPTIONS: e.options,
        REVISION: e.revision,
        VERSION: e.version,
      },
      'extlinux-entry.conf.in',
    ).replace(/\n+$/, ''),
  );
  return renderTemplate(fileTemplate, { DEFAULT: plan.defaultId ?? '', ENTRIES: blocks.join('\n\n') }, 'extlinux.conf.in');
}

/** Parses an extlinux.conf: DEFAULT and the LABEL blocks (keywords case-insensitive). */
export function parseExtlinuxConf(text: string, file: string): InstalledEntries {
  const entries: InstalledEntry[] = [];
  let defaultId: string | null = null;
  let cur: InstalledEntry | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (m === null) continue;
    const key = m[1].toUpperCase();
    const value = m[2];
    if (key === 'DEFAULT' && cur === null) defaultId = value;
    else if (key === 'LABEL') {
      cur = { id: value, file, revision: null, title: null, linux: null, initrd: null, options: null, tries: null };
      entries.push(cur);
    } else if (cur !== null) {
      if (key === 'MENU' && /^label\s/i.test(value)) cur.title = value.replace(/^label\s+/i, '');
      else if (key === 'LINUX' || key === 'KERNEL') cur.linux = value;
      else if (key === 'INITRD') cur.initrd = value;
      else if (key === 'APPEND') {
        cur.options = value;
        cur.revision = optionsRevision(value);
      }
    }
  }
  return { entries, defaultId };
}

/** The extlinux backend. */
export class ExtlinuxBootloader implements Bootloader {
  readonly name = 'extlinux' as const;
  readonly location: KernelLocation;
  private readonly bootDir: string;
  private readonly homeDir: string;
  private readonly templateDir: string;

  constructor(opts: BootloaderOptions) {
    this.bootDir = requireBootDir('extlinux', opts);
    this.homeDir = opts.homeDir;
    this.templateDir = findTemplateDir(opts.templateDir);
    this.location = kernelLocation(opts.homeDir, this.bootDir, opts.pathPrefix);
  }

  /** `$BOOT/extlinux/extlinux.conf`. */
  get confPath(): string {
    return join(this.bootDir, 'extlinux', 'extlinux.conf');
  }

  writeEntries(plan: BootPlan, opts: WriteEntriesOptions = {}): void {
    if (plan.entries.length === 0) {
      if (opts.allowEmpty === true) {
        step('remove extlinux.conf', () => {
          // Only a file holding nothing but gitroot's entries is gitroot's to remove.
          const entries = this.readEntries().entries;
          if (entries.length > 0 && entries.every((e) => e.id.startsWith('gitroot-'))) rmSync(this.confPath, { force: true });
        });
        step('remove old kernel copies', () => removeStaleCopies(this.bootDir, plan));
      }
      return;
    }
    const text = renderExtlinuxConf(loadTemplate(this.templateDir, 'extlinux.conf.in'), loadTemplate(this.templateDir, 'extlinux-entry.conf.in'), plan);
    step('copy kernels to the boot directory', () => syncKernelCopies(this.homeDir, this.bootDir, plan));
    step('write extlinux.conf', () => {
      const path = this.confPath;
      ensureDirDurable(join(this.bootDir, 'extlinux'));
      if (!existsSync(path) || readFileSync(path, 'utf8') !== text) writeFileAtomic(path, text);
      removeAtomicTemps(join(this.bootDir, 'extlinux'), 'extlinux.conf');
    });
    step('remove old kernel copies', () => removeStaleCopies(this.bootDir, plan));
  }

  readEntries(): InstalledEntries {
    if (!existsSync(this.confPath)) return { entries: [], defaultId: null };
    return parseExtlinuxConf(readFileSync(this.confPath, 'utf8'), this.confPath);
  }
}
