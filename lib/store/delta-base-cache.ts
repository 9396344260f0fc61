/**
 * The delta base cache: decoded objects that served as delta bases, keyed by pack and offset,
 * least recently used first out, bounded in bytes. Lets reads of neighbouring objects (files
 * of one tree, versions of one file) reuse a decoded chain instead of inflating it again.
 */
import type { ObjectType } from './git-objects.js';

export interface CachedBase {
  type: ObjectType;
  /** Shared with the cache: never modify it, copy before handing it out. */
  data: Buffer;
}

/** Default bound of the cache in bytes. */
export const DEFAULT_BASE_CACHE_BYTES = 24 * 1024 * 1024;

export class DeltaBaseCache {
  /** Insertion order is recency order: the first key is the least recently used. */
  private readonly entries = new Map<string, CachedBase>();
  private bytes = 0;

  constructor(readonly maxBytes: number = DEFAULT_BASE_CACHE_BYTES) {}

  /** Bytes held now. */
  get size(): number {
    return this.bytes;
  }

  get(packId: number, offset: number): CachedBase | undefined {
    const key = `${packId}:${offset}`;
    const hit = this.entries.get(key);
    if (hit !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, hit);
    }
    return hit;
  }

  /** Adds an object unless it is larger than a quarter of the cache; evicts the oldest to fit. */
  set(packId: number, offset: number, type: ObjectType, data: Buffer): void {
    if (data.length > this.maxBytes / 4) return;
    const key = `${packId}:${offset}`;
    const old = this.entries.get(key);
    if (old !== undefined) {
      this.bytes -= old.data.length;
      this.entries.delete(key);
    }
    this.entries.set(key, { type, data });
    this.bytes += data.length;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= v.data.length;
    }
  }

  /** Drops every entry of one pack (when the pack is closed). */
  dropPack(packId: number): void {
    const prefix = `${packId}:`;
    for (const [k, v] of this.entries) {
      if (k.startsWith(prefix)) {
        this.entries.delete(k);
        this.bytes -= v.data.length;
      }
    }
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}
