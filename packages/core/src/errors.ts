/**
 * Every bad argument in shuffle throws one of these, at once, before anything is computed or mutated.
 * The message always reads `<op>: <argument> expects <expected>, got <got>`, e.g.
 * `conv2d: weight expects 4 input channels per group (x has 8 channels, groups=2), got 3`.
 */
export class ShuffleArgumentError extends Error {
  constructor(
    readonly op: string,
    readonly argument: string,
    readonly expected: string,
    readonly got: string,
  ) {
    super(`${op}: ${argument} expects ${expected}, got ${got}`);
    this.name = 'ShuffleArgumentError';
  }
}

/** Throws a {@link ShuffleArgumentError}; typed `never` so it can end an expression branch. */
export function fail(op: string, argument: string, expected: string, got: unknown): never {
  throw new ShuffleArgumentError(op, argument, expected, describe(got));
}

/** A short, readable rendering of a bad value for an error message. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return `[${value.map(describe).join(', ')}]`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as unknown as ArrayLike<number>).length})`;
  if (typeof value === 'object') {
    const shape = (value as { shape?: unknown }).shape;
    if (Array.isArray(shape)) return `a tensor of shape ${describe(shape)}`;
    return Object.prototype.toString.call(value);
  }
  return String(value);
}
