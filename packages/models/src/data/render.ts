import { fail } from '@shuffle/core';

/** From background to full ink. */
const SHADES = ' .:-=+*#%@';

/**
 * A grey image (values in [0, 1], row by row) as text, each character the mean of a `block` x `block`
 * square of pixels: a 28x28 digit with block 2 gives 14 lines of 14 characters.
 */
export function imageToText(pixels: ArrayLike<number>, width: number, height: number, block = 2): string[] {
  const op = 'imageToText';
  if (pixels.length !== width * height) fail(op, 'pixels', `${width * height} values (${width}x${height})`, `${pixels.length}`);
  if (!Number.isInteger(block) || block < 1) fail(op, 'block', 'a positive integer', block);
  const lines: string[] = [];
  for (let top = 0; top < height; top += block) {
    let line = '';
    for (let left = 0; left < width; left += block) {
      let sum = 0;
      let count = 0;
      for (let y = top; y < Math.min(top + block, height); y++) {
        for (let x = left; x < Math.min(left + block, width); x++, count++) sum += pixels[y * width + x] as number;
      }
      const level = Math.min(1, Math.max(0, sum / count));
      line += SHADES[Math.round(level * (SHADES.length - 1))];
    }
    lines.push(line);
  }
  return lines;
}
