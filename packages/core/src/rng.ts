import { fail } from './errors.js';

/**
 * A small seeded random number generator: xoshiro128** (Blackman and Vigna), seeded through splitmix32.
 * Only 32-bit integer arithmetic (`Math.imul`, shifts), so the same seed gives the same numbers on every
 * run, engine and machine. Not for cryptography.
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  /** Box-Muller makes normals in pairs; the second one waits here. */
  private spareNormal: number | undefined;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) fail('Rng', 'seed', 'a safe integer (|seed| <= 2^53 - 1)', seed);
    // splitmix32 spreads the seed's low 32 bits (0 included) over the 128-bit state, which must not be all zero.
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) | 0;
      return fmix32(x);
    };
    this.s0 = next();
    // The seed's high part (0 for seeds in [0, 2^32)) goes into s1 alone, through fmix32, a bijection that
    // keeps 0: seeds with different low parts differ in s0, seeds with the same low part differ in s1, and s0, s2
    // (fmix32 of low + 0x9e3779b9 and low + 3 * 0x9e3779b9, never both 0) keep the state nonzero. The first
    // output is made from s1, so such seeds differ from their first number on.
    this.s1 = (next() ^ fmix32(Math.floor(seed / 2 ** 32))) >>> 0;
    this.s2 = next();
    this.s3 = next();
  }

  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  uniform(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67108864 + low) / 9007199254740992;
  }

  /** A standard normal sample (Box-Muller). */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const spare = this.spareNormal;
      this.spareNormal = undefined;
      return spare;
    }
    // 1 - uniform() lies in (0, 1], so the log is finite.
    const radius = Math.sqrt(-2 * Math.log(1 - this.uniform()));
    const angle = 2 * Math.PI * this.uniform();
    this.spareNormal = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }

  /** A uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) fail('Rng.int', 'n', 'an integer in [1, 2^32]', n);
    // Reject the top sliver of [0, 2^32) that does not divide evenly by n.
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const u = this.nextUint32();
      if (u < limit) return u % n;
    }
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i] as T;
      items[i] = items[j] as T;
      items[j] = tmp;
    }
    return items;
  }
}

/** MurmurHash3's 32-bit finalizer: a bijection of the 32-bit integers that mixes every input bit into every output bit. */
function fmix32(z: number): number {
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
