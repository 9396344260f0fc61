/**
 * Boot loader templates: the files in the project's `boot/` directory (`bls-entry.conf.in`,
 * `loader.conf.in`, `extlinux.conf.in`, `extlinux-entry.conf.in`) with `@KEY@` placeholders.
 * They are found next to the code (the nearest `boot/` holding them above this module), in
 * `/usr/share/gitroot/boot`, or in a directory the caller names. A line whose placeholder has
 * no value (null) is left out, so optional keys such as `initrd` vanish cleanly.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors/errors.js';

/** Templates every backend may ask for. */
export const TEMPLATE_FILES = ['bls-entry.conf.in', 'loader.conf.in', 'extlinux.conf.in', 'extlinux-entry.conf.in'] as const;
export type TemplateName = (typeof TEMPLATE_FILES)[number];
/** Where an installed gitroot keeps its templates. */
export const INSTALLED_TEMPLATE_DIR = '/usr/share/gitroot/boot';

/** The directory holding the templates: `explicit` if given, else the project's `boot/`, else INSTALLED_TEMPLATE_DIR. */
export function findTemplateDir(explicit?: string): string {
  const marker = TEMPLATE_FILES[0];
  if (explicit !== undefined) {
    if (!existsSync(join(explicit, marker))) {
      throw new ConfigError(`boot loader template directory ${explicit} has no ${marker}: name a directory holding gitroot's boot/ templates`);
    }
    return explicit;
  }
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'boot', marker))) return join(dir, 'boot');
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  if (existsSync(join(INSTALLED_TEMPLATE_DIR, marker))) return INSTALLED_TEMPLATE_DIR;
  throw new ConfigError(`cannot find gitroot's boot loader templates (${marker}) next to the program or in ${INSTALLED_TEMPLATE_DIR}: reinstall gitroot`);
}

/** Reads template `name` from `dir`. */
export function loadTemplate(dir: string, name: TemplateName): string {
  try {
    return readFileSync(join(dir, name), 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read boot loader template ${join(dir, name)}: ${(e as Error).message}; reinstall gitroot`, { cause: e });
  }
}

/**
 * Fills `@KEY@` placeholders of `template` from `values` (pure). A line holding a placeholder
 * whose value is null is dropped; a value with newlines must stand alone on its line; an
 * unknown placeholder is a ConfigError naming the template and line.
 */
export function renderTemplate(template: string, values: Record<string, string | null>, name: string): string {
  const out: string[] = [];
  const lines = template.split('\n');
  lines.forEach((line, i) => {
    let drop = false;
    const rendered = line.replace(/@([A-Z_]+)@/g, (_m, key: string) => {
      if (!(key in values)) {
        throw new ConfigError(`boot loader template ${name} line ${i + 1} uses unknown placeholder @${key}@: fix the template`);
      }
      const v = values[key];
      if (v === null) {
        drop = true;
        return '';
      }
      if (v.includes('\n') && line.trim() !== `@${key}@`) {
        throw new ConfigError(`boot loader template ${name} line ${i + 1}: @${key}@ spans lines and must stand alone on its line`);
      }
      return v;
    });
    if (!drop) out.push(rendered);
  });
  return out.join('\n');
}
