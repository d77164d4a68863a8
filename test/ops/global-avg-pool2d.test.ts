import { type Layout, randomUniform, type Tensor } from '@shuffle/core';
import { avgPool2d, avgPool2dBackward, globalAvgPool2d, globalAvgPool2dBackward } from '@shuffle/kernels';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { shape4 } from '../conformance/support/arbitraries.js';

const layouts = fc.constantFrom<Layout>('NCHW', 'NHWC');
const random = (shape: readonly number[], seed: number, layout: Layout): Tensor =>
  randomUniform(shape, { seed, layout, dtype: 'float64', low: -1, high: 1 });

describe('globalAvgPool2d', () => {
  it('equals an average pool whose kernel is the whole plane, forward and backward', () => {
    fc.assert(
      fc.property(shape4(), layouts, fc.integer(), (shape, layout, seed) => {
        const x = random(shape, seed, layout);
        const options = { kernelSize: [shape[2], shape[3]] as [number, number] };
        const y = globalAvgPool2d(x);
        expect(y.shape).toEqual([shape[0], shape[1], 1, 1]);
        expect(y.layout).toBe(layout);
        const pooled = avgPool2d(x, options).toArray();
        y.toArray().forEach((v, i) => {
          expect(v).toBeCloseTo(pooled[i] as number, 12);
        });
        const dy = random(y.shape, seed + 1, layout);
        const dx = globalAvgPool2dBackward(dy, x).dx;
        const pooledDx = avgPool2dBackward(dy, x, options).dx.toArray();
        dx.toArray().forEach((v, i) => {
          expect(v).toBeCloseTo(pooledDx[i] as number, 12);
        });
      }),
    );
  });

  it('spreads dy evenly: dx = dy / (H * W) over each plane', () => {
    fc.assert(
      fc.property(shape4(), layouts, fc.integer(), (shape, layout, seed) => {
        const [n, c, h, w] = shape as [number, number, number, number];
        const x = random(shape, seed, layout);
        const dy = random([n, c, 1, 1], seed + 1, layout);
        const dx = globalAvgPool2dBackward(dy, x).dx;
        expect(dx.layout).toBe(layout);
        for (let b = 0; b < n; b++) {
          for (let ch = 0; ch < c; ch++) {
            for (let i = 0; i < h; i++) {
              for (let j = 0; j < w; j++) expect(dx.get([b, ch, i, j])).toBe(dy.get([b, ch, 0, 0]) / (h * w));
            }
          }
        }
      }),
    );
  });
});
