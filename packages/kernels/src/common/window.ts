/*
 * Which outputs of a sliding window have a given tap inside the input: the kernels split their output
 * into an interior that needs no bounds checks and a border, from these ranges.
 */

/**
 * Output index i reads input index i * stride + offset for a tap at `offset` (= k * dilation - padBefore).
 * The first i (capped at outSize) for which that is >= 0.
 */
export function tapBegin(offset: number, stride: number, outSize: number): number {
  return offset >= 0 ? 0 : Math.min(outSize, Math.ceil(-offset / stride));
}

/** One past the last i (< outSize) for which i * stride + offset < size; never below tapBegin. */
export function tapEnd(offset: number, stride: number, size: number, outSize: number): number {
  const end = Math.min(outSize, Math.floor((size - 1 - offset) / stride) + 1);
  return Math.max(end, tapBegin(offset, stride, outSize));
}
