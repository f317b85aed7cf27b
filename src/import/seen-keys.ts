import { createHash } from 'node:crypto';

/**
 * A set of strings kept as 64-bit digests in one typed array (open addressing), for a dry run
 * to remember the keys of the users it would have created: 8 bytes a key at most 3/4 full, so a
 * million-user file (about three million keys) costs 32 MiB where a Set of the strings would
 * cost several times that. That two of three million keys share a digest has odds of about one
 * in four million; the dry run's report would then call one record a conflict: acceptable for a
 * rehearsal, and never used where a write depends on it.
 */
export class SeenKeys {
  #slots = new Uint32Array(2 * 1024);
  #count = 0;

  has(key: string): boolean {
    const [hi, lo] = digest(key);
    return this.#find(hi, lo) >= 0;
  }

  add(key: string): void {
    const [hi, lo] = digest(key);
    if (this.#find(hi, lo) >= 0) return;
    if ((this.#count + 1) * 4 > (this.#slots.length / 2) * 3) this.#grow();
    this.#put(hi, lo);
    this.#count += 1;
  }

  get size(): number {
    return this.#count;
  }

  /** The slot of the digest, or -1 when absent; (0, 0) marks an empty slot. */
  #find(hi: number, lo: number): number {
    const capacity = this.#slots.length / 2;
    for (let i = lo & (capacity - 1); ; i = (i + 1) & (capacity - 1)) {
      const h = this.#slots[2 * i]!;
      const l = this.#slots[2 * i + 1]!;
      if (h === 0 && l === 0) return -1;
      if (h === hi && l === lo) return i;
    }
  }

  #put(hi: number, lo: number): void {
    const capacity = this.#slots.length / 2;
    let i = lo & (capacity - 1);
    while (this.#slots[2 * i] !== 0 || this.#slots[2 * i + 1] !== 0) i = (i + 1) & (capacity - 1);
    this.#slots[2 * i] = hi;
    this.#slots[2 * i + 1] = lo;
  }

  #grow(): void {
    const old = this.#slots;
    this.#slots = new Uint32Array(old.length * 2);
    for (let i = 0; i < old.length; i += 2) if (old[i] !== 0 || old[i + 1] !== 0) this.#put(old[i]!, old[i + 1]!);
  }
}

function digest(key: string): [number, number] {
  const bytes = createHash('sha1').update(key).digest();
  const hi = bytes.readUInt32BE(0);
  const lo = bytes.readUInt32BE(4);
  // (0, 0) marks an empty slot; the one key with that digest moves next door.
  return hi === 0 && lo === 0 ? [0, 1] : [hi, lo];
}
