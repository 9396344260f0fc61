/**
 * Loose objects: `objects/xx/yyyy…` files holding one zlib-compressed "<type> <size>\0data".
 * Reading, header-only reading and abbreviated-id search. Verification against the id is the
 * caller's (object-store.ts) job.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ObjectCorruptError } from '../errors/errors.js';
import { type GitObject, type ObjectHeader, type ObjectType, isObjectType } from './git-objects.js';
import { inflateExact, inflatePrefix } from './zlib-inflate.js';

/** Longest header we accept: "commit " + up to 20 digits + NUL fits easily. */
const MAX_HEADER = 32;

/** Path of the loose object file for a 40-hex id. */
export function loosePath(objectsDir: string, hex: string): string {
  return path.join(objectsDir, hex.slice(0, 2), hex.slice(2));
}

export interface LooseHeader {
  type: ObjectType;
  size: number;
  /** Bytes of "<type> <size>\0". */
  length: number;
}

/** Parses "<type> <size>\0" at the start of an object's inflated bytes. */
export function parseLooseHeader(head: Buffer): LooseHeader {
  const nul = head.indexOf(0);
  const text = head.toString('latin1', 0, nul < 0 ? head.length : nul);
  const m = /^([a-z]+) (0|[1-9][0-9]{0,15})$/.exec(text);
  if (nul < 0 || m === null || !isObjectType(m[1])) {
    throw new ObjectCorruptError(`bad loose object header '${text.slice(0, MAX_HEADER)}'`);
  }
  return { type: m[1], size: Number(m[2]), length: nul + 1 };
}

/** Reads a file, or returns null if it does not exist. */
export function readFileIfExists(file: string): Buffer | null {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Decodes the compressed contents of a loose object file. Throws on any inconsistency. */
export function decodeLoose(file: Buffer): GitObject {
  const h = parseLooseHeader(inflatePrefix(file, MAX_HEADER));
  const all = inflateExact(file, h.length + h.size);
  return { type: h.type, data: all.subarray(h.length) };
}

/** Type and size of a loose object from the start of its compressed file. */
export function decodeLooseHeader(fileStart: Buffer): ObjectHeader {
  const { type, size } = parseLooseHeader(inflatePrefix(fileStart, MAX_HEADER));
  return { type, size };
}

/** Hex ids of loose objects starting with `prefix` (at least 2 lower-case hex digits). */
export function findLooseByPrefix(objectsDir: string, prefix: string, limit: number): string[] {
  const dir = path.join(objectsDir, prefix.slice(0, 2));
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const rest = prefix.slice(2);
  const found: string[] = [];
  for (const name of names) {
    if (name.length === 38 && name.startsWith(rest) && /^[0-9a-f]{38}$/.test(name)) {
      found.push(prefix.slice(0, 2) + name);
      if (found.length >= limit) break;
    }
  }
  return found;
}
