/**
 * The seeded generator: known answers from an independent implementation, determinism, the ranges and
 * uniformity of uniform(), int() and shuffle(). The main properties are named predicates over a way to
 * make generators, so the same predicate also runs against deliberately broken generators.
 */
import { Rng } from '@shuffle/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

// An independent xoshiro128** with splitmix32 seeding, written from the published algorithms with
// BigInt arithmetic (nothing shared with the Math.imul code under test):
// - xoshiro128** 1.1, Blackman and Vigna, https://prng.di.unimi.it/xoshiro128starstar.c:
//     result = rotl(s1 * 5, 7) * 9; t = s1 << 9; s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 11)
// - splitmix32: a Weyl sequence x += 0x9e3779b9 (the golden ratio), each step hashed by MurmurHash3's fmix32:
//     h ^= h >> 16; h *= 0x85ebca6b; h ^= h >> 13; h *= 0xc2b2ae35; h ^= h >> 16
//   The four first outputs, from x = the seed's low 32 bits, are s0..s3; shuffle's Rng documents that the seed's
//   high 32 bits (two's complement, 0 for seeds in [0, 2^32)) are xored into s1 through the same fmix32.

const MASK = 0xffffffffn;
const mul32 = (a: bigint, b: bigint) => (a * b) & MASK;
const rotl32 = (x: bigint, k: bigint) => ((x << k) | (x >> (32n - k))) & MASK;

function fmix32(h: bigint): bigint {
  h &= MASK;
  h ^= h >> 16n;
  h = mul32(h, 0x85ebca6bn);
  h ^= h >> 13n;
  h = mul32(h, 0xc2b2ae35n);
  return h ^ (h >> 16n);
}

type State = [bigint, bigint, bigint, bigint];

function referenceState(seed: number): State {
  const big = BigInt(seed);
  let x = big & MASK;
  const words = [0, 1, 2, 3].map(() => {
    x = (x + 0x9e3779b9n) & MASK;
    return fmix32(x);
  }) as State;
  words[1] ^= fmix32((big >> 32n) & MASK);
  return words;
}

function referenceOutputs(state: State, count: number): number[] {
  let [s0, s1, s2, s3] = state;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    out.push(Number(mul32(rotl32(mul32(s1, 5n), 7n), 9n)));
    const t = (s1 << 9n) & MASK;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl32(s3, 11n);
  }
  return out;
}

const take = (count: number, draw: () => number) => Array.from({ length: count }, draw);

/** Known answers, computed with the independent implementation above (not with the code under test). */
const KNOWN: Record<string, { state: number[]; outputs: number[] }> = {
  '0': {
    state: [2462723854, 1020716019, 454327756, 1275600319],
    outputs: [3809008728, 1133695204, 53579671, 2891528803, 139681546, 2203266335],
  },
  '42': {
    state: [939911724, 3948730756, 321366731, 3317318717],
    outputs: [2837322924, 544945897, 479756282, 3500138142, 339756180, 113173290],
  },
  '-1': {
    state: [920564995, 2111755919, 697614773, 1778835764],
    outputs: [366711690, 272762534, 3473266507, 3976497976, 1351277080, 2737109873],
  },
  '4294967296': {
    state: [2462723854, 1838730052, 454327756, 1275600319],
    outputs: [3990715033, 880691466, 4066939270, 2264130878, 889005911, 2387861279],
  },
};

describe('the independent reference implementation', () => {
  it('fmix32 reproduces the published MurmurHash3_x86_32 vectors for empty input (hash = fmix32(seed))', () => {
    expect(fmix32(0n)).toBe(0n);
    expect(fmix32(1n)).toBe(0x514e28b7n);
    expect(fmix32(0xffffffffn)).toBe(0x81f16f39n);
  });

  it('xoshiro128** from state {1, 2, 3, 4} reproduces the reference C output (as in rand_xoshiro tests)', () => {
    expect(referenceOutputs([1n, 2n, 3n, 4n], 10)).toEqual([
      11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849, 3729100597, 4258142804,
    ]);
  });

  it('reproduces the pinned states and outputs', () => {
    for (const [seed, { state, outputs }] of Object.entries(KNOWN)) {
      expect(referenceState(Number(seed)).map(Number)).toEqual(state);
      expect(referenceOutputs(referenceState(Number(seed)), outputs.length)).toEqual(outputs);
    }
  });
});

// The properties, as predicates over a way to make a generator from a seed.
type MakeRng = (seed: number) => Rng;
const core: MakeRng = (seed) => new Rng(seed);

/** The first numbers of `seed`'s generator are the independent implementation's. */
function matchesReference(make: MakeRng, seed: number): boolean {
  const rng = make(seed);
  const got = take(12, () => rng.nextUint32());
  return got.join() === referenceOutputs(referenceState(seed), 12).join();
}

/** Two generators from one seed give the same numbers, through every kind of draw, in any mix. */
function sameSeedSameSequence(make: MakeRng, seed: number, draws: readonly Draw[]): boolean {
  const a = make(seed);
  const b = make(seed);
  return draws.every((draw) => Object.is(drawWith(a, draw), drawWith(b, draw)));
}

/** Two different seeds give different sequences from the first numbers on. */
function differentSeedsDiffer(make: MakeRng, [seedA, seedB]: readonly [number, number]): boolean {
  if (seedA === seedB) return true;
  const a = make(seedA);
  const b = make(seedB);
  return take(4, () => a.nextUint32()).join() !== take(4, () => b.nextUint32()).join();
}

type Draw = { kind: 'uint32' | 'uniform' | 'normal' } | { kind: 'int'; n: number };
const drawArb: fc.Arbitrary<Draw> = fc.oneof(
  fc.constantFrom<Draw>({ kind: 'uint32' }, { kind: 'uniform' }, { kind: 'normal' }),
  fc.integer({ min: 1, max: 2 ** 32 }).map((n): Draw => ({ kind: 'int', n })),
);

function drawWith(rng: Rng, draw: Draw): number {
  switch (draw.kind) {
    case 'uint32':
      return rng.nextUint32();
    case 'uniform':
      return rng.uniform();
    case 'normal':
      return rng.normal();
    case 'int':
      return rng.int(draw.n);
  }
}

const seedArb = fc.maxSafeInteger(); // any safe integer, negative included
/** Pairs of seeds, half of them sharing their low 32 bits (the pairs a 32-bit seed would alias). */
const seedPairArb: fc.Arbitrary<[number, number]> = fc.oneof(
  fc.tuple(seedArb, seedArb),
  fc
    .tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: -(2 ** 20), max: 2 ** 20 - 1 }))
    .map(([low, high]): [number, number] => [low, high * 2 ** 32 + low]),
);

// Broken generators.
/** Mixes Math.random into every number: not reproducible. */
class LeakyRng extends Rng {
  override nextUint32(): number {
    return (super.nextUint32() ^ Math.floor(Math.random() * 2 ** 32)) >>> 0;
  }
}
/** Reproducible, but with a wrong multiplier in the scrambler: rotl(s1 * 5, 7) * 7 (0x38e38e39 is 1/9 mod 2^32). */
class WrongScrambler extends Rng {
  override nextUint32(): number {
    return Math.imul(Math.imul(super.nextUint32(), 0x38e38e39), 7) >>> 0;
  }
}
/** The classic mistake: only the seed's low 32 bits count. */
const truncatingSeed: MakeRng = (seed) => new Rng(seed >>> 0);

const RUNS = { seed: 7, numRuns: 200 };

describe('known answers', () => {
  it.each(Object.entries(KNOWN))('seed %s gives the pinned first numbers', (seed, { outputs }) => {
    const rng = new Rng(Number(seed));
    expect(take(outputs.length, () => rng.nextUint32())).toEqual(outputs);
  });

  it('every seed gives the independent implementation numbers', () => {
    fc.assert(fc.property(seedArb, (seed) => matchesReference(core, seed)));
  });

  it('the predicate fails for a generator with a wrong scrambler', () => {
    expect(
      fc.check(
        fc.property(seedArb, (seed) => matchesReference((s) => new WrongScrambler(s), seed)),
        RUNS,
      ).failed,
    ).toBe(true);
  });
});

describe('determinism', () => {
  it('the same seed gives the same sequence, through any mix of draws', () => {
    fc.assert(fc.property(seedArb, fc.array(drawArb, { maxLength: 40 }), (seed, draws) => sameSeedSameSequence(core, seed, draws)));
  });

  it('the predicate fails for a generator that mixes in Math.random', () => {
    const check = fc.check(
      fc.property(seedArb, fc.array(drawArb, { minLength: 1, maxLength: 40 }), (seed, draws) =>
        sameSeedSameSequence((s) => new LeakyRng(s), seed, draws),
      ),
      RUNS,
    );
    expect(check.failed).toBe(true);
  });

  it('different seeds give different sequences, seeds that share their low 32 bits included', () => {
    fc.assert(fc.property(seedPairArb, (pair) => differentSeedsDiffer(core, pair)));
    // Small neighbours too, exhaustively.
    const firsts = new Set<number>();
    for (let seed = -100; seed < 100; seed++) firsts.add(new Rng(seed).nextUint32());
    expect(firsts.size).toBe(200);
  });

  it('the predicate fails for a generator that keeps only the low 32 bits of the seed', () => {
    expect(
      fc.check(
        fc.property(seedPairArb, (pair) => differentSeedsDiffer(truncatingSeed, pair)),
        RUNS,
      ).failed,
    ).toBe(true);
  });
});

/** A generator that plays back scripted 32-bit words, to reach the edges of uniform() and int(). */
class Scripted extends Rng {
  private readonly words: number[];
  constructor(words: number[]) {
    super(0);
    this.words = [...words];
  }
  override nextUint32(): number {
    const word = this.words.shift();
    if (word === undefined) throw new Error('script exhausted');
    return word;
  }
}

describe('uniform', () => {
  it('lies in [0, 1)', () => {
    fc.assert(
      fc.property(seedArb, (seed) => {
        const rng = new Rng(seed);
        return take(200, () => rng.uniform()).every((u) => u >= 0 && u < 1);
      }),
      { numRuns: 50 },
    );
  });

  it('uses 27 + 26 bits of two words: its extremes are 0 and 1 - 2^-53', () => {
    expect(new Scripted([0, 0]).uniform()).toBe(0);
    expect(new Scripted([0xffffffff, 0xffffffff]).uniform()).toBe(1 - 2 ** -53);
    expect(new Scripted([0x80000000, 0]).uniform()).toBe(0.5);
    expect(new Scripted([0, 0x80000000]).uniform()).toBe(2 ** -28); // (2^31 >>> 6) / 2^53
  });

  it('has mean 1/2 and variance 1/12 over a large sample (fixed seed)', () => {
    const rng = new Rng(3);
    const u = take(100_000, () => rng.uniform());
    const mean = u.reduce((a, b) => a + b, 0) / u.length;
    const variance = u.reduce((a, b) => a + (b - mean) ** 2, 0) / u.length;
    // Standard errors: 0.0009 for the mean, 0.0003 for the variance.
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.005);
    expect(Math.abs(variance - 1 / 12)).toBeLessThan(0.002);
  });
});

describe('normal', () => {
  it('is finite, with mean 0 and variance 1 over a large sample (fixed seed)', () => {
    const rng = new Rng(11);
    const z = take(100_000, () => rng.normal());
    expect(z.every(Number.isFinite)).toBe(true);
    const mean = z.reduce((a, b) => a + b, 0) / z.length;
    const variance = z.reduce((a, b) => a + (b - mean) ** 2, 0) / z.length;
    // Standard errors: 0.003 for the mean, 0.0045 for the variance.
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(variance - 1)).toBeLessThan(0.03);
    // About 68.3% within one standard deviation, 95.4% within two.
    expect(Math.abs(z.filter((x) => Math.abs(x) < 1).length / z.length - 0.6827)).toBeLessThan(0.01);
    expect(Math.abs(z.filter((x) => Math.abs(x) < 2).length / z.length - 0.9545)).toBeLessThan(0.005);
  });
});

describe('int', () => {
  it('gives integers in [0, n)', () => {
    fc.assert(
      fc.property(seedArb, fc.integer({ min: 1, max: 2 ** 32 }), (seed, n) => {
        const rng = new Rng(seed);
        return take(50, () => rng.int(n)).every((k) => Number.isInteger(k) && k >= 0 && k < n);
      }),
    );
  });

  it('int(1) is always 0', () => {
    const rng = new Rng(5);
    expect(take(20, () => rng.int(1))).toEqual(new Array(20).fill(0));
  });

  it('is roughly uniform: chi-square over 7 and 10 bins (fixed seed)', () => {
    for (const n of [7, 10]) {
      const rng = new Rng(n);
      const draws = 70_000;
      const counts = new Array<number>(n).fill(0);
      for (let i = 0; i < draws; i++) {
        const k = rng.int(n);
        counts[k] = (counts[k] as number) + 1;
      }
      const expected = draws / n;
      const chi2 = counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
      // The 99.99th percentile of chi-square is 27.9 with 6 degrees of freedom, 33.7 with 9.
      expect(chi2).toBeLessThan(n === 7 ? 27.9 : 33.7);
    }
  });

  it('rejects the words above the largest multiple of n, so no residue is favoured', () => {
    const n = 3 * 2 ** 30; // 2^32 mod n = 2^30, so words >= 3 * 2^30 must be drawn again
    expect(new Scripted([0xffffffff, 3 * 2 ** 30, 5]).int(n)).toBe(5);
    expect(new Scripted([3 * 2 ** 30 - 1]).int(n)).toBe(3 * 2 ** 30 - 1);
    expect(new Scripted([0xffffffff]).int(2 ** 32)).toBe(0xffffffff);
    expect(new Scripted([0xffffffff, 7]).int(3)).toBe(1); // 2^32 mod 3 = 1: only 2^32 - 1 is drawn again
    expect(new Scripted([0xfffffffe]).int(3)).toBe(2);
  });
});

describe('shuffle', () => {
  it('returns the same array, holding a permutation of what it held', () => {
    fc.assert(
      fc.property(seedArb, fc.array(fc.integer()), (seed, items) => {
        const copy = [...items];
        const out = new Rng(seed).shuffle(copy);
        expect(out).toBe(copy);
        expect([...out].sort((a, b) => a - b)).toEqual([...items].sort((a, b) => a - b));
      }),
    );
  });

  it('is reproducible from the seed', () => {
    fc.assert(
      fc.property(seedArb, fc.array(fc.integer(), { maxLength: 30 }), (seed, items) => {
        expect(new Rng(seed).shuffle([...items])).toEqual(new Rng(seed).shuffle([...items]));
      }),
    );
  });

  it('gives each of the 24 orders of 4 items about equally often, the identity included (fixed seed)', () => {
    const rng = new Rng(99);
    const draws = 48_000;
    const counts = new Map<string, number>();
    for (let i = 0; i < draws; i++) {
      const key = rng.shuffle(['a', 'b', 'c', 'd']).join('');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    expect(counts.size).toBe(24);
    const expected = draws / 24;
    const chi2 = [...counts.values()].reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(57.1); // the 99.99th percentile of chi-square with 23 degrees of freedom
  });
});
