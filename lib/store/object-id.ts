/**
 * Object ids: conversions between 40-hex strings and 20-byte Buffers, and their validation.
 * The store works on Buffers internally; hex is for people, refs and error messages.
 */
import { UsageError } from '../errors/errors.js';

/** Bytes in a SHA-1 object id. */
export const OID_BYTES = 20;
/** Hex digits in a SHA-1 object id. */
export const OID_HEX_LENGTH = 40;

/**
 * A full object id in the canonical form gitroot writes and stores (40 lower-case hex), as a
 * regular-expression fragment for patterns that embed one (`git-revision=<id>`).
 */
export const OID_PATTERN = '[0-9a-f]{40}';

const CANONICAL = new RegExp(`^${OID_PATTERN}$`);
const FULL_HEX = /^[0-9a-fA-F]{40}$/;
const SOME_HEX = /^[0-9a-fA-F]+$/;

/**
 * True if `s` is a full object id in canonical form (40 lower-case hex): what state.json, refs
 * and boot entries hold. Input from people goes through isOidHex and toOidHex instead.
 */
export function isSha(s: unknown): s is string {
  return typeof s === 'string' && CANONICAL.test(s);
}

/** True if `s` is a full 40-digit hex object id (either case). */
export function isOidHex(s: string): boolean {
  return FULL_HEX.test(s);
}

/** True if `s` is a non-empty run of hex digits of at most 40 (a possibly abbreviated id). */
export function isHexPrefix(s: string): boolean {
  return s.length <= OID_HEX_LENGTH && SOME_HEX.test(s);
}

/** Lower-case hex of a 20-byte id (or of the 20 bytes at `start` of a larger buffer). */
export function oidToHex(oid: Uint8Array, start = 0): string {
  const b = Buffer.isBuffer(oid) ? oid : Buffer.from(oid.buffer, oid.byteOffset, oid.byteLength);
  return b.toString('hex', start, start + OID_BYTES);
}

/** The 20-byte Buffer of a 40-hex id; throws UsageError if `hex` is not one. */
export function oidFromHex(hex: string): Buffer {
  if (!isOidHex(hex)) {
    throw new UsageError(`invalid object id '${hex}': give 40 hex digits`, { data: { oid: hex } });
  }
  return Buffer.from(hex, 'hex');
}

/** Accepts a 40-hex string or a 20-byte Buffer and returns the 20-byte Buffer. */
export function toOidBuffer(oid: string | Uint8Array): Buffer {
  if (typeof oid === 'string') return oidFromHex(oid);
  if (oid.byteLength !== OID_BYTES) {
    throw new UsageError(`invalid object id of ${oid.byteLength} bytes: give 20 bytes or 40 hex digits`);
  }
  return Buffer.isBuffer(oid) ? oid : Buffer.from(oid.buffer, oid.byteOffset, oid.byteLength);
}

/** Accepts a 40-hex string or a 20-byte Buffer and returns lower-case hex. */
export function toOidHex(oid: string | Uint8Array): string {
  return typeof oid === 'string' ? oidFromHex(oid).toString('hex') : oidToHex(toOidBuffer(oid));
}
