/**
 * The one grammar of gitroot settings, shared by the kernel command line and config files.
 *
 * The command line is split exactly as the Linux kernel splits it (lib/cmdline.c
 * `next_arg`): whitespace separates tokens, a double quote toggles quoting anywhere in a
 * token, `key="a b"` gives the value `a b`, `"key=a b"` too, a bare word is a flag, and a
 * lone `--` ends the kernel's parameters (what follows belongs to init). The kernel has no
 * escapes, so a value cannot contain a double quote; the kernel never rejects a command
 * line, and neither does {@link tokenizeCmdline}.
 *
 * A config file holds one such token per line; blank lines and lines starting with `#` are
 * ignored, and `#` after the setting (separated by whitespace) starts a comment. Unlike the
 * command line, a config file is strict: an unterminated quote, two settings on one line or
 * a line without a key is a ConfigError naming `file:line`.
 *
 * Pure: no I/O. Tokens only carry text and origin; which keys exist and what values mean is
 * settings-schema.ts's job.
 */
import { ConfigError } from '../errors/errors.js';
import { DEFAULT_CMDLINE_FILE } from './cmdline-file.js';

/** Where a token was written: a file path, a URL or '/proc/cmdline', and the 1-based line. */
export interface Origin {
  source: string;
  line?: number;
}

/** One `key=value` or bare `key` as written. */
export interface SettingToken {
  /** The part before the first `=` (outer quotes removed). */
  key: string;
  /** The part after the first `=` with its quotes removed; null for a bare word. */
  value: string | null;
  /** The token exactly as written (for messages). */
  text: string;
  origin: Origin;
}

/** `source:line`, or just `source` when there is no line (the kernel command line). */
export function formatOrigin(origin: Origin): string {
  return origin.line === undefined ? origin.source : `${origin.source}:${origin.line}`;
}

/** The kernel's isspace(): space, \t, \n, \v, \f, \r. */
function isSpace(c: string): boolean {
  return c === ' ' || (c >= '\t' && c <= '\r');
}

interface RawArg {
  key: string;
  value: string | null;
  text: string;
  /** Index just past the token. */
  end: number;
  /** Whether the token's double quotes are balanced. */
  balanced: boolean;
}

/** One argument starting at `start` (not whitespace), split like the kernel's next_arg(). */
function nextArg(s: string, start: number): RawArg {
  let p = start;
  let inQuote = false;
  let quoted = false;
  if (s[p] === '"') {
    p++;
    inQuote = true;
    quoted = true;
  }
  let i = p;
  let equals = -1;
  let quotes = quoted ? 1 : 0;
  for (; i < s.length; i++) {
    const c = s[i]!;
    if (isSpace(c) && !inQuote) break;
    // Like the kernel, an '=' as the very first character does not split the token.
    if (equals < 0 && c === '=' && i > p) equals = i;
    if (c === '"') {
      inQuote = !inQuote;
      quotes++;
    }
  }
  // The kernel cuts a closing quote at the very end of the token off (once), whether it
  // closes a leading quote or a quoted value.
  let end = i;
  let key: string;
  let value: string | null;
  if (equals < 0) {
    if (quoted && end > p && s[end - 1] === '"') end--;
    key = s.slice(p, end);
    value = null;
  } else {
    key = s.slice(p, equals);
    let v = equals + 1;
    if (s[v] === '"') {
      v++;
      if (end > v && s[end - 1] === '"') end--;
    } else if (quoted && end > v && s[end - 1] === '"') {
      end--;
    }
    value = s.slice(v, Math.max(v, end));
  }
  return { key, value, text: s.slice(start, i), end: i, balanced: quotes % 2 === 0 };
}

/**
 * Splits a kernel command line into tokens, exactly as the kernel does. Never throws:
 * deciding which tokens matter and whether their values are valid is up to the caller.
 * Stops at a lone `--` (the rest is for init).
 */
export function tokenizeCmdline(text: string, source = DEFAULT_CMDLINE_FILE): SettingToken[] {
  const out: SettingToken[] = [];
  let i = 0;
  for (;;) {
    while (i < text.length && isSpace(text[i]!)) i++;
    if (i >= text.length) break;
    const arg = nextArg(text, i);
    i = arg.end;
    if (arg.value === null && arg.key === '--') break;
    out.push({ key: arg.key, value: arg.value, text: arg.text, origin: { source } });
  }
  return out;
}

/**
 * Parses a config file: one setting per line in the command line's grammar, `#` comments,
 * blank lines. Throws ConfigError naming `source:line` for a line the grammar cannot read.
 */
export function parseConfigText(text: string, source: string): SettingToken[] {
  const out: SettingToken[] = [];
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  lines.forEach((rawLine, idx) => {
    const line = idx + 1;
    const where = `${source}:${line}`;
    const s = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    let i = 0;
    while (i < s.length && isSpace(s[i]!)) i++;
    if (i >= s.length || s[i] === '#') return;
    const arg = nextArg(s, i);
    const data = { source, line, text: arg.text };
    if (!arg.balanced) {
      throw new ConfigError(`${where}: unterminated double quote in '${arg.text}'; close the quote (values cannot contain '"')`, { data });
    }
    if (arg.key === '') {
      throw new ConfigError(`${where}: '${arg.text}' has no setting name; write KEY or KEY=VALUE`, { data });
    }
    let j = arg.end;
    while (j < s.length && isSpace(s[j]!)) j++;
    if (j < s.length && s[j] !== '#') {
      throw new ConfigError(`${where}: more than one setting on a line ('${s.slice(i).trim()}'); put one setting per line, or quote a value with spaces`, {
        data,
      });
    }
    out.push({ key: arg.key, value: arg.value, text: arg.text, origin: { source, line } });
  });
  return out;
}

/** Writes a value so that the grammar reads it back unchanged (quoted when it has spaces). */
export function quoteValue(value: string): string {
  if (value.includes('"')) throw new ConfigError(`a setting value cannot contain '"' (${value})`);
  return value === '' || /[\s#]/.test(value) ? `"${value}"` : value;
}
