/**
 * Field validators shared by the home's JSON files (state.json, last-fetch.json): each checks
 * one field of parsed JSON and throws Invalid naming the field; the file's reader turns that
 * into one StateError naming the file and the fix.
 */
import { isSha } from '../store/object-id.js';

const FILE_NAME = /^[A-Za-z0-9._+-]+$/;

/** Thrown inside validation; the reader turns it into a StateError naming the file. */
export class Invalid extends Error {}

export function fail(what: string): never {
  throw new Invalid(what);
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function shaOrNull(v: unknown, key: string): string | null {
  if (v === null) return null;
  if (!isSha(v)) fail(`'${key}' is neither null nor a 40-hex commit id`);
  return v;
}

export function isoTime(v: unknown, key: string): string {
  if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) fail(`'${key}' is not an ISO date`);
  return v;
}

export function shaList(v: unknown, key: string, limit: number): string[] {
  if (!Array.isArray(v)) fail(`'${key}' is not a list`);
  const seen = new Set<string>();
  for (const [i, s] of v.entries()) {
    if (!isSha(s)) fail(`'${key}[${i}]' is not a 40-hex commit id`);
    if (seen.has(s)) fail(`'${key}' lists ${s} twice`);
    seen.add(s);
  }
  if (v.length > limit) fail(`'${key}' has ${v.length} entries, more than ${limit}`);
  return [...(v as string[])];
}

export function fileNameOrNull(v: unknown, key: string): string | null {
  if (v === null) return null;
  if (typeof v !== 'string' || !FILE_NAME.test(v) || v === '.' || v === '..') fail(`'${key}' is not a plain file name`);
  return v;
}

export function stringOrNull(v: unknown, key: string): string | null {
  if (v === null) return null;
  if (typeof v !== 'string') fail(`'${key}' is neither null nor a string`);
  return v;
}
