/**
 * Every bad argument to @shuffle/core throws a ShuffleArgumentError at once, whose message reads
 * `<function>: <argument> expects <what was expected>, got <what came>`.
 */
import {
  compareTensors,
  describe as describeValue,
  fail,
  full,
  heNormal,
  ones,
  Rng,
  randomNormal,
  randomUniform,
  ShuffleArgumentError,
  Tensor,
  tensor,
  zeros,
  zerosLike,
} from '@shuffle/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectArgumentError } from './support.js';

// Calls below pass ill-typed arguments on purpose, as JavaScript callers can.
// biome-ignore lint/suspicious/noExplicitAny: the point is to pass what the types forbid
const bad = (value: unknown): any => value;

type Case = [name: string, call: () => unknown, op: string, argument: string, message: RegExp];

/** `text` as a literal inside a regular expression. */
const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const t4 = () => tensor([1, 2, 3, 4, 5, 6], [1, 2, 3, 1]);
const t2 = () => tensor([1, 2, 3, 4, 5, 6], [2, 3]);
const x = () => tensor([1], [1]);

const shapeCases = (op: string, make: (shape: unknown) => unknown): Case[] => [
  [
    `${op}: non-integer dimension`,
    () => make([2, 1.5]),
    op,
    'shape[1]',
    new RegExp(`^${literal(op)}: shape\\[1\\] expects a non-negative integer, got 1\\.5$`),
  ],
  [
    `${op}: negative dimension`,
    () => make([-1, 2]),
    op,
    'shape[0]',
    new RegExp(`^${literal(op)}: shape\\[0\\] expects a non-negative integer, got -1$`),
  ],
  [
    `${op}: NaN dimension`,
    () => make([3, 2, Number.NaN]),
    op,
    'shape[2]',
    new RegExp(`^${literal(op)}: shape\\[2\\] expects a non-negative integer, got NaN$`),
  ],
  [
    `${op}: infinite dimension`,
    () => make([Number.POSITIVE_INFINITY]),
    op,
    'shape[0]',
    new RegExp(`^${literal(op)}: shape\\[0\\] expects a non-negative integer, got Infinity$`),
  ],
  [
    `${op}: string dimension`,
    () => make(['2']),
    op,
    'shape[0]',
    new RegExp(`^${literal(op)}: shape\\[0\\] expects a non-negative integer, got 2$`),
  ],
  [
    `${op}: shape not an array`,
    () => make(4),
    op,
    'shape',
    new RegExp(`^${literal(op)}: shape expects an array of non-negative integers, got 4$`),
  ],
];

const layoutCases = (op: string, make: (shape: number[], layout: unknown) => unknown): Case[] => [
  [
    `${op}: unknown layout`,
    () => make([1, 1, 1, 1], 'nhwc'),
    op,
    'layout',
    new RegExp(`^${literal(op)}: layout expects 'NCHW' or 'NHWC', got "nhwc"$`),
  ],
  [
    `${op}: NHWC on a 3-D tensor`,
    () => make([2, 3, 4], 'NHWC'),
    op,
    'layout',
    new RegExp(`^${literal(op)}: layout expects 'NCHW' \\(row-major\\) for a 3-D tensor; NHWC applies to 4-D tensors only, got 'NHWC'$`),
  ],
  [
    `${op}: NHWC on a scalar`,
    () => make([], 'NHWC'),
    op,
    'layout',
    new RegExp(`^${literal(op)}: layout expects 'NCHW' \\(row-major\\) for a 0-D tensor.*, got 'NHWC'$`),
  ],
];

const dtypeCase = (op: string, make: (dtype: unknown) => unknown): Case => [
  `${op}: bad dtype`,
  () => make('float16'),
  op,
  'dtype',
  new RegExp(`^${literal(op)}: dtype expects 'float32' or 'float64', got "float16"$`),
];

const indexCases = (method: 'get' | 'set' | 'offset'): Case[] => {
  const op = `Tensor.${method}`;
  const call = (index: unknown, t = t4()) => (method === 'set' ? t.set(bad(index), 0) : t[method](bad(index)));
  const escaped = literal(op);
  return [
    [
      `${op}: too few coordinates`,
      () => call([0, 0]),
      op,
      'index',
      new RegExp(`^${escaped}: index expects an array of 4 coordinates for shape \\[1, 2, 3, 1\\], got \\[0, 0\\]$`),
    ],
    [
      `${op}: too many coordinates`,
      () => call([0, 0, 0, 0, 0]),
      op,
      'index',
      /expects an array of 4 coordinates for shape \[1, 2, 3, 1\], got \[0, 0, 0, 0, 0\]$/,
    ],
    [`${op}: not an array`, () => call(3), op, 'index', /index expects an array of 4 coordinates for shape \[1, 2, 3, 1\], got 3$/],
    [
      `${op}: out of range`,
      () => call([0, 0, 3, 0]),
      op,
      'index[2]',
      new RegExp(`^${escaped}: index\\[2\\] expects an integer in \\[0, 2\\] for shape \\[1, 2, 3, 1\\], got 3$`),
    ],
    [
      `${op}: negative`,
      () => call([0, -1, 0, 0]),
      op,
      'index[1]',
      /index\[1\] expects an integer in \[0, 1\] for shape \[1, 2, 3, 1\], got -1$/,
    ],
    [
      `${op}: non-integer`,
      () => call([0, 0.5, 0, 0]),
      op,
      'index[1]',
      /index\[1\] expects an integer in \[0, 1\] for shape \[1, 2, 3, 1\], got 0\.5$/,
    ],
    [
      `${op}: NaN`,
      () => call([Number.NaN, 0, 0, 0]),
      op,
      'index[0]',
      /index\[0\] expects an integer in \[0, 0\] for shape \[1, 2, 3, 1\], got NaN$/,
    ],
    [
      `${op}: any index into an empty tensor`,
      () => call([0, 0], zeros([0, 3])),
      op,
      'index',
      /index expects an index into a tensor with elements \(shape \[0, 3\] has none\), got \[0, 0\]$/,
    ],
  ];
};

const seedCases = (op: string, make: (seed: unknown) => unknown, expected: string): Case[] =>
  [1.5, Number.NaN, Number.POSITIVE_INFINITY, '3', undefined, 2 ** 53, null].map(
    (seed): Case => [
      `${op}: seed ${describeValue(seed)}`,
      () => make(seed),
      op,
      'seed',
      new RegExp(`^${literal(op)}: seed expects ${expected}, got ${literal(describeValue(seed))}$`),
    ],
  );

const randomMakers: [string, (shape: unknown, options: unknown) => unknown][] = [
  ['randomUniform', (s, o) => randomUniform(bad(s), bad(o))],
  ['randomNormal', (s, o) => randomNormal(bad(s), bad(o))],
  ['heNormal', (s, o) => heNormal(bad(s), bad(o))],
];

const cases: Case[] = [
  // new Tensor
  [
    'Tensor: data not a float array',
    () => new Tensor(bad([1, 2]), [2]),
    'Tensor',
    'data',
    /^Tensor: data expects a Float32Array or Float64Array, got \[1, 2\]$/,
  ],
  [
    'Tensor: integer typed array',
    () => new Tensor(bad(new Int32Array(2)), [2]),
    'Tensor',
    'data',
    /^Tensor: data expects a Float32Array or Float64Array, got Int32Array\(2\)$/,
  ],
  [
    'Tensor: wrong data length',
    () => new Tensor(new Float32Array(5), [2, 3]),
    'Tensor',
    'data',
    /^Tensor: data expects 6 elements for shape \[2, 3\], got 5$/,
  ],
  ...shapeCases('Tensor', (shape) => new Tensor(new Float32Array(0), bad(shape))),
  ...layoutCases('Tensor', (shape, layout) => new Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, bad(layout))),

  // tensor()
  [
    'tensor: wrong data length',
    () => tensor([1, 2, 3, 4, 5], [2, 3]),
    'tensor',
    'data',
    /^tensor: data expects 6 elements for shape \[2, 3\], got 5$/,
  ],
  [
    'tensor: too much data',
    () => tensor(new Float64Array(7), [2, 3]),
    'tensor',
    'data',
    /^tensor: data expects 6 elements for shape \[2, 3\], got 7$/,
  ],
  [
    'tensor: data not an array',
    () => tensor(bad(5), [1]),
    'tensor',
    'data',
    /^tensor: data expects an array or typed array of numbers, got 5$/,
  ],
  [
    'tensor: null data',
    () => tensor(bad(null), [1]),
    'tensor',
    'data',
    /^tensor: data expects an array or typed array of numbers, got null$/,
  ],
  ['tensor: a string element', () => tensor(bad([1, 'x']), [2]), 'tensor', 'data[1]', /^tensor: data\[1\] expects a number, got x$/],
  [
    'tensor: a missing element',
    () => tensor(bad([1, undefined]), [2]),
    'tensor',
    'data[1]',
    /^tensor: data\[1\] expects a number, got undefined$/,
  ],
  ...shapeCases('tensor', (shape) => tensor([], bad(shape))),
  ...layoutCases('tensor', (shape, layout) => tensor(new Array(shape.reduce((a, b) => a * b, 1)).fill(0), shape, bad(layout))),
  dtypeCase('tensor', (dtype) => tensor([1], [1], 'NCHW', bad(dtype))),

  // zeros, ones, full, zerosLike
  ...shapeCases('zeros', (shape) => zeros(bad(shape))),
  ...layoutCases('zeros', (shape, layout) => zeros(shape, { layout: bad(layout) })),
  dtypeCase('zeros', (dtype) => zeros([1], { dtype: bad(dtype) })),
  ...shapeCases('ones', (shape) => ones(bad(shape))),
  ...layoutCases('ones', (shape, layout) => ones(shape, { layout: bad(layout) })),
  dtypeCase('ones', (dtype) => ones([1], { dtype: bad(dtype) })),
  ...shapeCases('full', (shape) => full(bad(shape), 1)),
  ...layoutCases('full', (shape, layout) => full(shape, 1, { layout: bad(layout) })),
  dtypeCase('full', (dtype) => full([1], 1, { dtype: bad(dtype) })),
  ['full: value not a number', () => full([1], bad('1')), 'full', 'value', /^full: value expects a number, got 1$/],
  [
    'zerosLike: not a tensor',
    () => zerosLike(bad({ shape: [2] })),
    'zerosLike',
    'like',
    /^zerosLike: like expects a Tensor, got a tensor of shape \[2\]$/,
  ],
  ['zerosLike: null', () => zerosLike(bad(null)), 'zerosLike', 'like', /^zerosLike: like expects a Tensor, got null$/],

  // Tensor methods
  ...indexCases('get'),
  ...indexCases('set'),
  ...indexCases('offset'),
  [
    'Tensor.toLayout: unknown layout',
    () => t4().toLayout(bad('CHWN')),
    'Tensor.toLayout',
    'layout',
    /^Tensor\.toLayout: layout expects 'NCHW' or 'NHWC', got "CHWN"$/,
  ],
  [
    'Tensor.toLayout: NHWC on a 2-D tensor',
    () => t2().toLayout('NHWC'),
    'Tensor.toLayout',
    'layout',
    /^Tensor\.toLayout: layout expects 'NCHW' \(row-major\) for a 2-D tensor; NHWC applies to 4-D tensors only, got 'NHWC'$/,
  ],
  [
    'Tensor.reshape: an NHWC tensor',
    () => t4().toLayout('NHWC').reshape([6]),
    'Tensor.reshape',
    'this',
    /^Tensor\.reshape: this expects a tensor in NCHW \(row-major\) order; call toLayout\("NCHW"\) first, got an NHWC tensor$/,
  ],
  [
    'Tensor.reshape: wrong size',
    () => t2().reshape([4, 2]),
    'Tensor.reshape',
    'shape',
    /^Tensor\.reshape: shape expects 6 elements \(from \[2, 3\]\), got \[4, 2\] with 8$/,
  ],
  ...shapeCases('Tensor.reshape', (shape) => t2().reshape(bad(shape))),
  dtypeCase('Tensor.astype', (dtype) => x().astype(bad(dtype))),

  // Random tensors
  ...randomMakers.flatMap(([op, make]): Case[] => [
    ...shapeCases(op, (shape) => make(shape, { seed: 1 })),
    ...layoutCases(op, (shape, layout) => make(shape, { seed: 1, layout })),
    dtypeCase(op, (dtype) => make([1], { seed: 1, dtype })),
    ...seedCases(op, (seed) => make([1], { seed }), 'a safe integer or an Rng'),
    [
      `${op}: no options`,
      () => make([1], undefined),
      op,
      'options',
      new RegExp(`^${literal(op)}: options expects an object with a seed, got undefined$`),
    ],
  ]),
  [
    'randomUniform: low > high',
    () => randomUniform([1], { seed: 1, low: 2, high: 1 }),
    'randomUniform',
    'low, high',
    /^randomUniform: low, high expects finite numbers with low <= high and a finite high - low, got \[2, 1\]$/,
  ],
  [
    'randomUniform: NaN low',
    () => randomUniform([1], { seed: 1, low: Number.NaN }),
    'randomUniform',
    'low, high',
    /expects finite numbers with low <= high.*, got \[NaN, 1\]$/,
  ],
  [
    'randomUniform: infinite high',
    () => randomUniform([1], { seed: 1, high: Number.POSITIVE_INFINITY }),
    'randomUniform',
    'low, high',
    /, got \[0, Infinity\]$/,
  ],
  [
    'randomUniform: range too wide',
    () => randomUniform([1], { seed: 1, low: -1e308, high: 1e308 }),
    'randomUniform',
    'low, high',
    /and a finite high - low, got \[-1e\+308, 1e\+308\]$/,
  ],
  [
    'randomUniform: no float32 in the range',
    () => randomUniform([1], { seed: 1, low: 0.5000000001, high: 0.5000000002 }),
    'randomUniform',
    'low, high',
    /^randomUniform: low, high expects a range holding at least one float32 value, got \[0\.5000000001, 0\.5000000002\]$/,
  ],
  [
    'randomNormal: negative std',
    () => randomNormal([1], { seed: 1, std: -1 }),
    'randomNormal',
    'mean, std',
    /^randomNormal: mean, std expects finite numbers with std >= 0, got \[0, -1\]$/,
  ],
  ['randomNormal: NaN mean', () => randomNormal([1], { seed: 1, mean: Number.NaN }), 'randomNormal', 'mean, std', /, got \[NaN, 1\]$/],
  [
    'randomNormal: infinite std',
    () => randomNormal([1], { seed: 1, std: Number.POSITIVE_INFINITY }),
    'randomNormal',
    'mean, std',
    /, got \[0, Infinity\]$/,
  ],
  [
    'heNormal: fanIn 0',
    () => heNormal([4, 2], { seed: 1, fanIn: 0 }),
    'heNormal',
    'fanIn',
    /^heNormal: fanIn expects a positive integer.*, got 0$/,
  ],
  [
    'heNormal: fanIn 1.5',
    () => heNormal([4, 2], { seed: 1, fanIn: 1.5 }),
    'heNormal',
    'fanIn',
    /^heNormal: fanIn expects a positive integer.*, got 1\.5$/,
  ],
  ['heNormal: negative fanIn', () => heNormal([4, 2], { seed: 1, fanIn: -3 }), 'heNormal', 'fanIn', /, got -3$/],
  [
    'heNormal: default fanIn of an empty shape',
    () => heNormal([4, 0, 3, 3], { seed: 1 }),
    'heNormal',
    'fanIn',
    /^heNormal: fanIn expects a positive integer \(by default the product of the dimensions after the first\), got 0$/,
  ],

  // Rng
  ...seedCases('Rng', (seed) => new Rng(bad(seed)), 'a safe integer \\(\\|seed\\| <= 2\\^53 - 1\\)'),
  ...[0, -1, 1.5, Number.NaN, 2 ** 32 + 1, Number.POSITIVE_INFINITY].map(
    (n): Case => [
      `Rng.int: n = ${n}`,
      () => new Rng(1).int(n),
      'Rng.int',
      'n',
      new RegExp(`^Rng\\.int: n expects an integer in \\[1, 2\\^32\\], got ${literal(String(n))}$`),
    ],
  ),

  // compareTensors
  [
    'compareTensors: negative atol',
    () => compareTensors(x(), x(), { atol: -1 }),
    'compareTensors',
    'tolerance',
    /^compareTensors: tolerance expects atol >= 0 and rtol >= 0, got atol=-1, rtol=0$/,
  ],
  [
    'compareTensors: NaN rtol',
    () => compareTensors(x(), x(), { rtol: Number.NaN }),
    'compareTensors',
    'tolerance',
    /^compareTensors: tolerance expects atol >= 0 and rtol >= 0, got atol=0, rtol=NaN$/,
  ],
];

describe('every bad argument throws a ShuffleArgumentError that names the function, the argument, the expectation and the value', () => {
  it.each(cases)('%s', (_name, call, op, argument, message) => {
    expectArgumentError(call, op, argument, message);
  });
});

describe('a call that throws changes nothing', () => {
  it('Tensor.set with a bad index leaves the data alone', () => {
    const t = t4();
    expect(() => t.set([0, 0, 0, 5], 9)).toThrow(ShuffleArgumentError);
    expect(t.toArray()).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('a random tensor with a bad argument draws nothing from the generator passed as its seed', () => {
    const rng = new Rng(4);
    const calls: (() => unknown)[] = [
      () => randomUniform([2], { seed: rng, low: 1, high: 0 }),
      () => randomUniform([2, 2], { seed: rng, layout: 'NHWC' }),
      () => randomNormal([bad('2')], { seed: rng }),
      () => randomNormal([2], { seed: rng, std: -1 }),
      () => heNormal([2, 2], { seed: rng, fanIn: 0 }),
      () => heNormal([2, 2], { seed: rng, dtype: bad('int8') }),
    ];
    for (const call of calls) expect(call).toThrow(ShuffleArgumentError);
    expect(rng.nextUint32()).toBe(new Rng(4).nextUint32());
  });
});

describe('ShuffleArgumentError and fail()', () => {
  it('keeps the parts of the message as fields', () => {
    const error = new ShuffleArgumentError('conv2d', 'weight', '4 input channels per group', '3');
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('ShuffleArgumentError');
    expect(error.message).toBe('conv2d: weight expects 4 input channels per group, got 3');
    expect([error.op, error.argument, error.expected, error.got]).toEqual(['conv2d', 'weight', '4 input channels per group', '3']);
  });

  it('fail renders the value it got', () => {
    const rendered = (value: unknown) => {
      try {
        fail('op', 'arg', 'something', value);
      } catch (error) {
        return (error as ShuffleArgumentError).got;
      }
    };
    expect(rendered(-0)).toBe('-0');
    expect(rendered([1, [2, 'a']])).toBe('[1, [2, a]]');
    expect(rendered(new Float64Array(3))).toBe('Float64Array(3)');
    expect(rendered(tensor([1, 2], [2]))).toBe('a tensor of shape [2]');
    expect(rendered(undefined)).toBe('undefined');
    expect(rendered({})).toBe('[object Object]');
  });

  it('describe never throws', () => {
    fc.assert(fc.property(fc.anything(), (value) => typeof describeValue(value) === 'string'));
  });
});
