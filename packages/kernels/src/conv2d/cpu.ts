import { Tensor } from '@shuffle/core';
import { resultF32, zeroedF32 } from '../common/arena.js';
import { band, sgemm, sgemmPart } from '../common/gemm.js';
import { scratchF32 } from '../common/scratch.js';
import { defineTask, jobArgs, partsFor, runParallel, sharedF32, sharedSlot } from '../common/threads.js';
import { tapBegin, tapEnd } from '../common/window.js';
import { conv2dReference } from './reference.js';
import { type Conv2dGeometry, type Conv2dOps, type Conv2dOptions, checkConv2dBackward, conv2dGeometry } from './spec.js';

/*
 * Convolution as matrix products (common/gemm.ts), group by group, in either layout without converting.
 *
 * Per group, with Kg = Cin_g * kH * kW terms per output and the output pixels as the other axis:
 *   NCHW:  Y_g [Cout_g x pixels] = W_g [Cout_g x Kg]  * Col_g [Kg x pixels]
 *   NHWC:  Y_g [pixels x Cout_g] = Col_g [pixels x Kg] * W_g^T [Kg x Cout_g]
 * where Col_g ("im2col") holds, for each output pixel, the Kg input values its window reads (zero in the
 * padding). Its K index runs in x's memory order, (c, p, q) for NCHW and (p, q, c) for NHWC, so that
 * building it copies contiguous runs: rows of an input plane in NCHW, channel runs of a pixel in NHWC.
 * An OIHW weight is already W_g in NCHW order (and an OHWI one, i.e. a weight stored NHWC, in NHWC order);
 * the other combination is reordered into scratch, a copy the size of the weight.
 *
 * 1x1 stride-1 unpadded convolutions (ShuffleNet's grouped 1x1, the bulk of its work) need no im2col:
 * Col_g is x itself, viewed through strides. In NCHW, image n's group g is the [Cin_g x H*W] row-major
 * block at channel g*Cin_g; in NHWC, the whole batch's group g is the [N*H*W x Cin_g] matrix with row
 * stride C starting at channel g*Cin_g, so the batch folds into the product's long axis for free.
 * (In NCHW the images are separate products: their pixel blocks are not one stride apart.)
 *
 * Otherwise im2col runs over chunks of output pixels, sized so that a chunk's columns (about 256 KiB)
 * are still in L2 when the product reads them, and so that the scratch stays small at any batch.
 *
 * The backward is the same three matrices taken the other way round (see the derivation above
 * conv2dBackward):
 *   dW_g   += dY_g Col_g^T  (NCHW)   or   dY_g^T Col_g  (NHWC), summed over chunks and images;
 *   dCol_g  = W_g^T dY_g    (NCHW)   or   dY_g W_g      (NHWC), then col2im adds each column entry back
 *                                                               to the input element it was copied from.
 * For the 1x1 case dCol_g is dx's own block, written directly.
 *
 * Groups of one or two output channels (depthwise-like) skip the matrices: a product that thin would be
 * mostly tile padding, and direct loops measured 2-4x faster there (see isThin).
 *
 * With setNumThreads(n > 1), the matrix paths split large calls across worker threads, bit-identically
 * (see "The products, on one thread or split" below); the direct loops stay on one thread.
 *
 * float64 exists for gradient checks only: it goes to the reference.
 */

export const conv2dCpu: Conv2dOps = {
  conv2d(x, weight, options?: Conv2dOptions) {
    const geometry = conv2dGeometry('conv2d', x, weight, options);
    if (x.dtype === 'float64') return conv2dReference.conv2d(x, weight, options);
    const { batch, outChannels, outHeight, outWidth, bias } = geometry;
    const shape = [batch, outChannels, outHeight, outWidth];
    const yData = resultF32(batch * outChannels * outHeight * outWidth);
    const y = new Tensor(yData, shape, x.layout);
    if (batch === 0) return y;
    const xData = x.data as Float32Array;
    const nhwc = x.layout === 'NHWC';
    const thin = isThin(geometry);
    // With a bias, y starts as the bias and the products add to it; the direct loops always add, so they
    // start from 0. Only the GEMM without a bias stores every element outright.
    if (bias) fillBias(yData, bias.data as Float32Array, nhwc, batch, outChannels, outHeight * outWidth);
    else if (thin) yData.fill(0);
    const accumulate = bias !== undefined;
    if (thin) {
      if (nhwc) directForwardNhwc(xData, weight, yData, geometry);
      else directForwardNchw(xData, weight, yData, geometry);
    } else {
      const weights = weightMatrix(weight, nhwc, geometry);
      forwardProducts(xData, weights, weight.size, yData, geometry, nhwc, accumulate);
    }
    return y;
  },

  /*
   * The forward is, per group, one matrix product Y = W Col (NCHW names; NHWC is its transpose) plus b,
   * with Col[k, pixel] = x at the input position that tap k of that pixel's window reads (0 in padding).
   * For a product Y = W Col, by the chain rule over every Y[o, pixel] = sum_k W[o, k] Col[k, pixel]:
   *   ∂L/∂W[o, k]       = sum_pixel dY[o, pixel] Col[k, pixel]    i.e. dW   = dY Col^T
   *   ∂L/∂Col[k, pixel] = sum_o     dY[o, pixel] W[o, k]          i.e. dCol = W^T dY
   *   ∂L/∂b[o]          = sum_pixel dY[o, pixel]
   * and summed over the images of the batch for W and b, which every image uses. An input element
   * appears in Col once per window tap that reads it, so dx adds up its dCol entries (col2im); padding
   * entries are constants and send nothing back.
   */
  conv2dBackward(dy, x, weight, options?: Conv2dOptions) {
    const geometry = checkConv2dBackward(dy, x, weight, options);
    if (x.dtype === 'float64') return conv2dReference.conv2dBackward(dy, x, weight, options);
    const { batch, outChannels, outHeight, outWidth, bias } = geometry;
    const dx = new Tensor(zeroedF32(x.size), x.shape, x.layout);
    const dweight = new Tensor(zeroedF32(weight.size), weight.shape, weight.layout);
    const nhwc = x.layout === 'NHWC';
    if (batch > 0) {
      const xData = x.data as Float32Array;
      const dyData = dy.data as Float32Array;
      const dxData = dx.data as Float32Array;
      if (isThin(geometry)) {
        if (nhwc) directBackwardNhwc(dyData, xData, weight, dxData, dweight, geometry);
        else directBackwardNchw(dyData, xData, weight, dxData, dweight.data as Float32Array, geometry);
      } else {
        const weights = weightMatrix(weight, nhwc, geometry);
        // dW is accumulated over chunks and images in K order: in dweight itself when that is its memory order.
        const inPlace = weightInKOrder(weight, nhwc, geometry);
        const dweights = inPlace ? (dweight.data as Float32Array) : scratchF32('conv2d.dweightMatrix', weight.size).fill(0, 0, weight.size);
        backwardProducts(dyData, xData, weights, dxData, dweights, weight.size, geometry, nhwc);
        if (!inPlace) storeWeightMatrix(dweights, dweight, nhwc, geometry);
      }
    }
    if (!bias) return { dx, dweight };
    const dbias = new Tensor(zeroedF32(bias.size), bias.shape);
    sumPerChannel(dy.data as Float32Array, nhwc, batch, outChannels, outHeight * outWidth, dbias.data as Float32Array);
    return { dx, dweight, dbias };
  },
};

/**
 * One or two output channels per group (depthwise-like convolutions): a product per group would be
 * mostly tile padding (the micro-kernel computes 4 rows) plus an im2col copy, so these loop directly.
 * Measured at 60 channels 28x28, 3x3 pad 1, batch 1, CPU ms forward / backward, GEMM path -> direct:
 *   1 per group (groups 60):  NCHW 4.35 / 5.29 -> 1.33 / 1.00    NHWC 5.26 / 10.35 -> 1.47 / 1.88
 *   2 per group (groups 30):  NCHW 3.86 / 4.96 -> 1.52 / 1.89    NHWC 2.39 / 4.82  -> 2.77 / 3.99
 *   3 per group (groups 20):  NCHW 1.97 / 4.05 -> 2.94 / 3.31    NHWC 2.08 / 4.26  -> 3.61 / 5.55
 */
function isThin(g: Conv2dGeometry): boolean {
  return g.outChannelsPerGroup <= 2;
}

/** 1x1, stride 1, no padding: x is already the column matrix (dilation does nothing to a 1x1 kernel). */
function isPointwise(g: Conv2dGeometry): boolean {
  const { pad } = g;
  return (
    g.kernelHeight === 1 &&
    g.kernelWidth === 1 &&
    g.strideHeight === 1 &&
    g.strideWidth === 1 &&
    pad.top === 0 &&
    pad.bottom === 0 &&
    pad.left === 0 &&
    pad.right === 0
  );
}

/** y[n, o, pixel] = bias[o] for every pixel, in y's layout. */
function fillBias(y: Float32Array, bias: Float32Array, nhwc: boolean, batch: number, channels: number, pixels: number): void {
  if (nhwc) {
    let at = 0;
    for (let pixel = 0; pixel < batch * pixels; pixel++) {
      for (let o = 0; o < channels; o++) y[at++] = bias[o] as number;
    }
  } else {
    for (let n = 0; n < batch; n++) {
      for (let o = 0; o < channels; o++) {
        const start = (n * channels + o) * pixels;
        y.fill(bias[o] as number, start, start + pixels);
      }
    }
  }
}

/** db[o] = sum of dy over the batch and pixels of channel o, summed in double precision. */
function sumPerChannel(dy: Float32Array, nhwc: boolean, batch: number, channels: number, pixels: number, db: Float32Array): void {
  const sums = new Float64Array(channels);
  if (nhwc) {
    let at = 0;
    for (let pixel = 0; pixel < batch * pixels; pixel++) {
      for (let o = 0; o < channels; o++) sums[o] = (sums[o] as number) + (dy[at++] as number);
    }
  } else {
    let at = 0;
    for (let n = 0; n < batch; n++) {
      for (let o = 0; o < channels; o++) {
        let sum = 0;
        for (let end = at + pixels; at < end; at++) sum += dy[at] as number;
        sums[o] = (sums[o] as number) + sum;
      }
    }
  }
  db.set(sums);
}

// ---- The products, on one thread or split across several (common/threads.ts) ----

/*
 * Each path below computes part `part` of `parts` of its output, so that one code serves one thread
 * (part 0 of 1) and several. The cuts keep every output element's operations as they are on one thread,
 * so results are bit-identical:
 *   - 1x1 forward and backward: every product is cut into bands of whole tiles (sgemmPart).
 *   - im2col forward: each part takes a range of output pixels (im2col included); an element's sum does
 *     not depend on where the pixel chunks start.
 *   - im2col backward: each part takes a range of input channels of every group: its rows of Col and
 *     dCol, its columns of dW, its channels of dx (col2im adds into them in the same order). The pixel
 *     chunks stay the single-threaded ones, since dW is rounded to float32 after each chunk.
 * Workers see only shared memory: the inputs are copied into shared slots, the outputs computed there and
 * copied out. The copies cost ~0.1 ns per byte against ~0.5 ns per multiply-add, and ShuffleNet's
 * convolutions do 20-80 multiply-adds per element copied.
 */

/** Multiply-adds of the forward (the backward does twice as many). */
function forwardMacs(g: Conv2dGeometry): number {
  return g.batch * g.outChannels * g.outHeight * g.outWidth * g.inChannelsPerGroup * g.kernelHeight * g.kernelWidth;
}

/** Pixels of a part's range are cut at multiples of the GEMM tile (4), so that parts add no edge tiles. */
const TILE = 4;

function forwardPart(
  x: Float32Array,
  weights: Float32Array,
  y: Float32Array,
  g: Conv2dGeometry,
  nhwc: boolean,
  accumulate: boolean,
  part: number,
  parts: number,
): void {
  if (isPointwise(g)) {
    if (nhwc) pointwiseForwardNhwc(x, weights, y, g, accumulate, part, parts);
    else pointwiseForwardNchw(x, weights, y, g, accumulate, part, parts);
  } else if (nhwc) im2colForwardNhwc(x, weights, y, g, accumulate, part, parts);
  else im2colForwardNchw(x, weights, y, g, accumulate, part, parts);
}

function backwardPart(
  dy: Float32Array,
  x: Float32Array,
  weights: Float32Array,
  dx: Float32Array,
  dweights: Float32Array,
  g: Conv2dGeometry,
  nhwc: boolean,
  part: number,
  parts: number,
): void {
  if (isPointwise(g)) {
    if (nhwc) pointwiseBackwardNhwc(dy, x, weights, dx, dweights, g, part, parts);
    else pointwiseBackwardNchw(dy, x, weights, dx, dweights, g, part, parts);
  } else if (nhwc) im2colBackwardNhwc(dy, x, weights, dx, dweights, g, part, parts);
  else im2colBackwardNchw(dy, x, weights, dx, dweights, g, part, parts);
}

/** y (+)= the convolution's products, with y holding the bias when `accumulate`. */
function forwardProducts(
  x: Float32Array,
  weights: Float32Array,
  weightSize: number,
  y: Float32Array,
  g: Conv2dGeometry,
  nhwc: boolean,
  accumulate: boolean,
): void {
  const parts = partsFor(forwardMacs(g));
  if (parts === 1) {
    forwardPart(x, weights, y, g, nhwc, accumulate, 0, 1);
    return;
  }
  sharedF32('conv2d.x', x.length).set(x);
  sharedF32('conv2d.weights', weightSize).set(weights.subarray(0, weightSize));
  const shared = sharedF32('conv2d.y', y.length);
  if (accumulate) shared.set(y);
  writeJob(g, nhwc, accumulate);
  runParallel(forwardTask, parts);
  y.set(shared.subarray(0, y.length));
}

/** dx = the convolution's input gradient, dweights += its weight gradient (K-ordered, zero on entry). */
function backwardProducts(
  dy: Float32Array,
  x: Float32Array,
  weights: Float32Array,
  dx: Float32Array,
  dweights: Float32Array,
  weightSize: number,
  g: Conv2dGeometry,
  nhwc: boolean,
): void {
  // Channel ranges need a channel per part (the stem's 3 input channels split 1 + 2).
  const parts = Math.min(partsFor(2 * forwardMacs(g)), isPointwise(g) ? Number.POSITIVE_INFINITY : g.inChannelsPerGroup);
  if (parts <= 1) {
    backwardPart(dy, x, weights, dx, dweights, g, nhwc, 0, 1);
    return;
  }
  sharedF32('conv2d.dy', dy.length).set(dy);
  sharedF32('conv2d.x', x.length).set(x);
  sharedF32('conv2d.weights', weightSize).set(weights.subarray(0, weightSize));
  const sharedDx = sharedF32('conv2d.dx', dx.length).fill(0, 0, dx.length);
  const sharedDweights = sharedF32('conv2d.dweights', weightSize).fill(0, 0, weightSize);
  writeJob(g, nhwc, false);
  runParallel(backwardTask, parts);
  dx.set(sharedDx.subarray(0, dx.length));
  dweights.set(sharedDweights.subarray(0, weightSize));
}

/** The geometry's numbers, in the order the job's args hold them (after args[0], the flags). */
const GEOMETRY_FIELDS = [
  'batch',
  'inChannels',
  'inHeight',
  'inWidth',
  'outChannels',
  'outHeight',
  'outWidth',
  'groups',
  'inChannelsPerGroup',
  'outChannelsPerGroup',
  'kernelHeight',
  'kernelWidth',
  'strideHeight',
  'strideWidth',
  'dilationHeight',
  'dilationWidth',
] as const;
const PAD_FIELDS = ['top', 'bottom', 'left', 'right'] as const;
const NHWC_FLAG = 1;
const ACCUMULATE_FLAG = 2;

function writeJob(g: Conv2dGeometry, nhwc: boolean, accumulate: boolean): void {
  const args = jobArgs(1 + GEOMETRY_FIELDS.length + PAD_FIELDS.length);
  args[0] = (nhwc ? NHWC_FLAG : 0) | (accumulate ? ACCUMULATE_FLAG : 0);
  let at = 1;
  for (const field of GEOMETRY_FIELDS) args[at++] = g[field];
  for (const side of PAD_FIELDS) args[at++] = g.pad[side];
}

function readJob(args: Float64Array): { g: Conv2dGeometry; nhwc: boolean; accumulate: boolean } {
  const g = { bias: undefined, pad: { top: 0, bottom: 0, left: 0, right: 0 } } as unknown as Record<string, number> & Conv2dGeometry;
  let at = 1;
  for (const field of GEOMETRY_FIELDS) g[field] = args[at++] as number;
  for (const side of PAD_FIELDS) g.pad[side] = args[at++] as number;
  const flags = args[0] as number;
  return { g, nhwc: (flags & NHWC_FLAG) !== 0, accumulate: (flags & ACCUMULATE_FLAG) !== 0 };
}

const forwardTask = defineTask('conv2d.forward', (args, part, parts) => {
  const { g, nhwc, accumulate } = readJob(args);
  forwardPart(sharedSlot('conv2d.x'), sharedSlot('conv2d.weights'), sharedSlot('conv2d.y'), g, nhwc, accumulate, part, parts);
});

const backwardTask = defineTask('conv2d.backward', (args, part, parts) => {
  const { g, nhwc } = readJob(args);
  const [dy, x, weights] = [sharedSlot('conv2d.dy'), sharedSlot('conv2d.x'), sharedSlot('conv2d.weights')];
  backwardPart(dy, x, weights, sharedSlot('conv2d.dx'), sharedSlot('conv2d.dweights'), g, nhwc, part, parts);
});

/** The tasks a worker must serve for conv2d (gemm-worker.ts). */
export const conv2dTasks = [forwardTask, backwardTask];

// ---- 1x1 stride-1 convolutions: one product per group (NHWC) or per image and group (NCHW) ----

/*
 * The weight matrix W [Cout x Cin_g] is row-major in either weight layout (a 1x1 kernel's OIHW and OHWI
 * are the same order), so W_g starts at row group * Cout_g.
 */

function pointwiseForwardNchw(
  x: Float32Array,
  w: Float32Array,
  y: Float32Array,
  g: Conv2dGeometry,
  accumulate: boolean,
  part: number,
  parts: number,
): void {
  const { batch, inChannels, outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const pixels = g.outHeight * g.outWidth;
  for (let n = 0; n < batch; n++) {
    for (let group = 0; group < groups; group++) {
      // Y_g [Cout_g x pixels] = W_g [Cout_g x Cin_g] * X_g [Cin_g x pixels]
      sgemmPart(
        part,
        parts,
        outChannelsPerGroup,
        pixels,
        inChannelsPerGroup,
        w,
        group * outChannelsPerGroup * inChannelsPerGroup,
        inChannelsPerGroup,
        1,
        x,
        (n * inChannels + group * inChannelsPerGroup) * pixels,
        pixels,
        1,
        y,
        (n * outChannels + group * outChannelsPerGroup) * pixels,
        pixels,
        1,
        accumulate,
      );
    }
  }
}

function pointwiseForwardNhwc(
  x: Float32Array,
  w: Float32Array,
  y: Float32Array,
  g: Conv2dGeometry,
  accumulate: boolean,
  part: number,
  parts: number,
): void {
  const { inChannels, outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const pixels = g.batch * g.outHeight * g.outWidth;
  for (let group = 0; group < groups; group++) {
    // Y_g [pixels x Cout_g] = X_g [pixels x Cin_g] * W_g^T [Cin_g x Cout_g], rows C (or Cout) apart.
    sgemmPart(
      part,
      parts,
      pixels,
      outChannelsPerGroup,
      inChannelsPerGroup,
      x,
      group * inChannelsPerGroup,
      inChannels,
      1,
      w,
      group * outChannelsPerGroup * inChannelsPerGroup,
      1,
      inChannelsPerGroup,
      y,
      group * outChannelsPerGroup,
      outChannels,
      1,
      accumulate,
    );
  }
}

function pointwiseBackwardNchw(
  dy: Float32Array,
  x: Float32Array,
  w: Float32Array,
  dx: Float32Array,
  dw: Float32Array,
  g: Conv2dGeometry,
  part: number,
  parts: number,
): void {
  const { batch, inChannels, outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const pixels = g.outHeight * g.outWidth;
  for (let n = 0; n < batch; n++) {
    for (let group = 0; group < groups; group++) {
      const xStart = (n * inChannels + group * inChannelsPerGroup) * pixels;
      const dyStart = (n * outChannels + group * outChannelsPerGroup) * pixels;
      const wStart = group * outChannelsPerGroup * inChannelsPerGroup;
      // dW_g [Cout_g x Cin_g] += dY_g [Cout_g x pixels] * X_g^T [pixels x Cin_g]  (dweight starts at zero)
      sgemmPart(
        part,
        parts,
        outChannelsPerGroup,
        inChannelsPerGroup,
        pixels,
        dy,
        dyStart,
        pixels,
        1,
        x,
        xStart,
        1,
        pixels,
        dw,
        wStart,
        inChannelsPerGroup,
        1,
        true,
      );
      // dX_g [Cin_g x pixels] = W_g^T [Cin_g x Cout_g] * dY_g [Cout_g x pixels]
      sgemmPart(
        part,
        parts,
        inChannelsPerGroup,
        pixels,
        outChannelsPerGroup,
        w,
        wStart,
        1,
        inChannelsPerGroup,
        dy,
        dyStart,
        pixels,
        1,
        dx,
        xStart,
        pixels,
        1,
        false,
      );
    }
  }
}

function pointwiseBackwardNhwc(
  dy: Float32Array,
  x: Float32Array,
  w: Float32Array,
  dx: Float32Array,
  dw: Float32Array,
  g: Conv2dGeometry,
  part: number,
  parts: number,
): void {
  const { inChannels, outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const pixels = g.batch * g.outHeight * g.outWidth;
  for (let group = 0; group < groups; group++) {
    const xStart = group * inChannelsPerGroup;
    const dyStart = group * outChannelsPerGroup;
    const wStart = group * outChannelsPerGroup * inChannelsPerGroup;
    // dW_g [Cout_g x Cin_g] = dY_g^T [Cout_g x pixels] * X_g [pixels x Cin_g]
    sgemmPart(
      part,
      parts,
      outChannelsPerGroup,
      inChannelsPerGroup,
      pixels,
      dy,
      dyStart,
      1,
      outChannels,
      x,
      xStart,
      inChannels,
      1,
      dw,
      wStart,
      inChannelsPerGroup,
      1,
      false,
    );
    // dX_g [pixels x Cin_g] = dY_g [pixels x Cout_g] * W_g [Cout_g x Cin_g]
    sgemmPart(
      part,
      parts,
      pixels,
      inChannelsPerGroup,
      outChannelsPerGroup,
      dy,
      dyStart,
      outChannels,
      1,
      w,
      wStart,
      inChannelsPerGroup,
      1,
      dx,
      xStart,
      inChannels,
      1,
      false,
    );
  }
}

// ---- Every other convolution: im2col over chunks of output pixels, then the products ----

/** Whether the weight's memory order is already [Cout x Kg] with K in x's layout order. */
function weightInKOrder(weight: Tensor, nhwc: boolean, g: Conv2dGeometry): boolean {
  // A 1x1 kernel or one input channel per group makes (c, p, q) and (p, q, c) the same order.
  return weight.layout === (nhwc ? 'NHWC' : 'NCHW') || g.kernelHeight * g.kernelWidth === 1 || g.inChannelsPerGroup === 1;
}

/** The weight as a row-major [Cout x Kg] matrix with K in x's layout order: the weight's data, or a reordered copy. */
function weightMatrix(weight: Tensor, nhwc: boolean, g: Conv2dGeometry): Float32Array {
  const data = weight.data as Float32Array;
  if (weightInKOrder(weight, nhwc, g)) return data;
  const matrix = scratchF32('conv2d.weightMatrix', data.length);
  const [outStride, inStride, rowStride, colStride] = weight.strides as [number, number, number, number];
  let at = 0;
  for (let o = 0; o < g.outChannels; o++) {
    forEachTap(g, nhwc, (c, p, q) => {
      matrix[at++] = data[o * outStride + c * inStride + p * rowStride + q * colStride] as number;
    });
  }
  return matrix;
}

/** The inverse of weightMatrix's reordering: a K-ordered [Cout x Kg] matrix into dweight's layout. */
function storeWeightMatrix(matrix: Float32Array, dweight: Tensor, nhwc: boolean, g: Conv2dGeometry): void {
  const data = dweight.data as Float32Array;
  const [outStride, inStride, rowStride, colStride] = dweight.strides as [number, number, number, number];
  let at = 0;
  for (let o = 0; o < g.outChannels; o++) {
    forEachTap(g, nhwc, (c, p, q) => {
      data[o * outStride + c * inStride + p * rowStride + q * colStride] = matrix[at++] as number;
    });
  }
}

/** Visits the (channel, kernel row, kernel column) of one output channel's taps in K order. Weight-sized work only. */
function forEachTap(g: Conv2dGeometry, nhwc: boolean, visit: (c: number, p: number, q: number) => void): void {
  const { inChannelsPerGroup, kernelHeight, kernelWidth } = g;
  if (nhwc) {
    for (let p = 0; p < kernelHeight; p++)
      for (let q = 0; q < kernelWidth; q++) for (let c = 0; c < inChannelsPerGroup; c++) visit(c, p, q);
  } else {
    for (let c = 0; c < inChannelsPerGroup; c++)
      for (let p = 0; p < kernelHeight; p++) for (let q = 0; q < kernelWidth; q++) visit(c, p, q);
  }
}

/** Output pixels per im2col chunk: Kg floats per pixel, about 64 Ki floats (256 KiB) per chunk, a multiple of 4. */
function chunkPixels(terms: number, pixels: number): number {
  const chunk = Math.max(64, Math.floor(65536 / terms / 4) * 4);
  return Math.min(chunk, pixels);
}

function im2colForwardNchw(
  x: Float32Array,
  weights: Float32Array,
  y: Float32Array,
  g: Conv2dGeometry,
  accumulate: boolean,
  part: number,
  parts: number,
): void {
  const { batch, inChannels, outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const terms = inChannelsPerGroup * g.kernelHeight * g.kernelWidth;
  const pixels = g.outHeight * g.outWidth;
  const inPlane = g.inHeight * g.inWidth;
  const chunk = chunkPixels(terms, pixels);
  const columns = scratchF32('conv2d.columns', terms * chunk);
  const [begin, end] = band(pixels, part, parts, TILE);
  for (let n = 0; n < batch; n++) {
    for (let group = 0; group < groups; group++) {
      const xStart = (n * inChannels + group * inChannelsPerGroup) * inPlane;
      for (let first = begin; first < end; first += chunk) {
        const count = Math.min(chunk, end - first);
        im2colNchw(x, xStart, inChannelsPerGroup, g, first, count, columns);
        // Y_g[:, chunk] [Cout_g x count] = W_g [Cout_g x Kg] * Col [Kg x count]
        sgemm(
          outChannelsPerGroup,
          count,
          terms,
          weights,
          group * outChannelsPerGroup * terms,
          terms,
          1,
          columns,
          0,
          count,
          1,
          y,
          (n * outChannels + group * outChannelsPerGroup) * pixels + first,
          pixels,
          1,
          accumulate,
        );
      }
    }
  }
}

function im2colForwardNhwc(
  x: Float32Array,
  weights: Float32Array,
  y: Float32Array,
  g: Conv2dGeometry,
  accumulate: boolean,
  part: number,
  parts: number,
): void {
  const { outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const terms = inChannelsPerGroup * g.kernelHeight * g.kernelWidth;
  const pixels = g.batch * g.outHeight * g.outWidth;
  const chunk = chunkPixels(terms, pixels);
  const columns = scratchF32('conv2d.columns', terms * chunk);
  const [begin, end] = band(pixels, part, parts, TILE);
  for (let first = begin; first < end; first += chunk) {
    const count = Math.min(chunk, end - first);
    for (let group = 0; group < groups; group++) {
      im2colNhwc(x, group * inChannelsPerGroup, inChannelsPerGroup, g, first, count, columns);
      // Y_g[chunk, :] [count x Cout_g] = Col [count x Kg] * W_g^T [Kg x Cout_g]
      sgemm(
        count,
        outChannelsPerGroup,
        terms,
        columns,
        0,
        terms,
        1,
        weights,
        group * outChannelsPerGroup * terms,
        1,
        terms,
        y,
        first * outChannels + group * outChannelsPerGroup,
        outChannels,
        1,
        accumulate,
      );
    }
  }
}

/*
 * The backward takes the input channels [cBegin, cEnd) of every group (all of them on one thread). In
 * NCHW those are consecutive rows (c, p, q) of Col and dCol, and consecutive columns of dW.
 */
function im2colBackwardNchw(
  dy: Float32Array,
  x: Float32Array,
  weights: Float32Array,
  dx: Float32Array,
  dweights: Float32Array,
  g: Conv2dGeometry,
  part: number,
  parts: number,
): void {
  const { batch, inChannels, outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const taps = g.kernelHeight * g.kernelWidth;
  const terms = inChannelsPerGroup * taps;
  const pixels = g.outHeight * g.outWidth;
  const inPlane = g.inHeight * g.inWidth;
  const chunk = chunkPixels(terms, pixels);
  const [cBegin, cEnd] = band(inChannelsPerGroup, part, parts, 1);
  const channels = cEnd - cBegin;
  if (channels === 0) return;
  const rows = channels * taps;
  const columns = scratchF32('conv2d.columns', rows * chunk);
  const dcolumns = scratchF32('conv2d.dcolumns', rows * chunk);
  for (let n = 0; n < batch; n++) {
    for (let group = 0; group < groups; group++) {
      const xStart = (n * inChannels + group * inChannelsPerGroup + cBegin) * inPlane;
      const wStart = group * outChannelsPerGroup * terms + cBegin * taps;
      for (let first = 0; first < pixels; first += chunk) {
        const count = Math.min(chunk, pixels - first);
        const dyStart = (n * outChannels + group * outChannelsPerGroup) * pixels + first;
        im2colNchw(x, xStart, channels, g, first, count, columns);
        // dW_g[:, rows] [Cout_g x rows] += dY_g[:, chunk] [Cout_g x count] * Col^T [count x rows]
        sgemm(outChannelsPerGroup, rows, count, dy, dyStart, pixels, 1, columns, 0, 1, count, dweights, wStart, terms, 1, true);
        // dCol [rows x count] = W_g[:, rows]^T [rows x Cout_g] * dY_g[:, chunk] [Cout_g x count]
        sgemm(rows, count, outChannelsPerGroup, weights, wStart, 1, terms, dy, dyStart, pixels, 1, dcolumns, 0, count, 1, false);
        col2imNchw(dx, xStart, channels, g, first, count, dcolumns);
      }
    }
  }
}

/*
 * In NHWC a range of channels is a run inside each tap's (p, q, c) block of K, so a part that takes only
 * some channels works on compacted copies: W's columns for its channels (taps x channels per row), and
 * its own dW columns, accumulated there over the chunks exactly as dweights would be, then copied back.
 */
function im2colBackwardNhwc(
  dy: Float32Array,
  x: Float32Array,
  weights: Float32Array,
  dx: Float32Array,
  dweights: Float32Array,
  g: Conv2dGeometry,
  part: number,
  parts: number,
): void {
  const { outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const taps = g.kernelHeight * g.kernelWidth;
  const terms = inChannelsPerGroup * taps;
  const pixels = g.batch * g.outHeight * g.outWidth;
  const chunk = chunkPixels(terms, pixels);
  const [cBegin, cEnd] = band(inChannelsPerGroup, part, parts, 1);
  const channels = cEnd - cBegin;
  if (channels === 0) return;
  const rowLength = channels * taps;
  const whole = channels === inChannelsPerGroup;
  const w = whole ? weights : compactTaps(weights, scratchF32('conv2d.weightBand', outChannels * rowLength), g, cBegin, channels);
  const dw = whole ? dweights : scratchF32('conv2d.dweightBand', outChannels * rowLength).fill(0, 0, outChannels * rowLength);
  const columns = scratchF32('conv2d.columns', rowLength * chunk);
  const dcolumns = scratchF32('conv2d.dcolumns', rowLength * chunk);
  for (let first = 0; first < pixels; first += chunk) {
    const count = Math.min(chunk, pixels - first);
    for (let group = 0; group < groups; group++) {
      const dyStart = first * outChannels + group * outChannelsPerGroup;
      const wStart = group * outChannelsPerGroup * rowLength;
      const channelStart = group * inChannelsPerGroup + cBegin;
      im2colNhwc(x, channelStart, channels, g, first, count, columns);
      // dW_g [Cout_g x rowLength] += dY_g[chunk, :]^T [Cout_g x count] * Col [count x rowLength]
      sgemm(outChannelsPerGroup, rowLength, count, dy, dyStart, 1, outChannels, columns, 0, rowLength, 1, dw, wStart, rowLength, 1, true);
      // dCol [count x rowLength] = dY_g[chunk, :] [count x Cout_g] * W_g [Cout_g x rowLength]
      sgemm(count, rowLength, outChannelsPerGroup, dy, dyStart, outChannels, 1, w, wStart, rowLength, 1, dcolumns, 0, rowLength, 1, false);
      col2imNhwc(dx, channelStart, channels, g, first, count, dcolumns);
    }
  }
  if (!whole) expandTaps(dw, dweights, g, cBegin, channels);
}

/** band[o][(p, q) * channels + c] = weights[o][(p, q) * Cin_g + cBegin + c]: a channel range of NHWC-ordered K. */
function compactTaps(weights: Float32Array, band: Float32Array, g: Conv2dGeometry, cBegin: number, channels: number): Float32Array {
  const taps = g.kernelHeight * g.kernelWidth;
  let to = 0;
  for (let o = 0; o < g.outChannels; o++) {
    for (let tap = 0; tap < taps; tap++) {
      const from = (o * taps + tap) * g.inChannelsPerGroup + cBegin;
      for (let c = 0; c < channels; c++) band[to++] = weights[from + c] as number;
    }
  }
  return band;
}

/** The inverse of compactTaps: a channel range's columns back into the whole K-ordered matrix. */
function expandTaps(band: Float32Array, weights: Float32Array, g: Conv2dGeometry, cBegin: number, channels: number): void {
  const taps = g.kernelHeight * g.kernelWidth;
  let from = 0;
  for (let o = 0; o < g.outChannels; o++) {
    for (let tap = 0; tap < taps; tap++) {
      const to = (o * taps + tap) * g.inChannelsPerGroup + cBegin;
      for (let c = 0; c < channels; c++) weights[to + c] = band[from++] as number;
    }
  }
}

/**
 * NCHW im2col of `channels` channels of one image's group (from xStart) for output pixels first .. first+count-1:
 * columns[row][pixel], row = (c * kH + p) * kW + q, `count` floats per row. Each row is a run of output
 * rows; along one output row the tap walks an input row with step strideW, so the copy is a strided read
 * between two zero-filled margins.
 */
function im2colNchw(
  x: Float32Array,
  xStart: number,
  channels: number,
  g: Conv2dGeometry,
  first: number,
  count: number,
  columns: Float32Array,
): void {
  const { inHeight, inWidth, outWidth, strideHeight, strideWidth, kernelHeight, kernelWidth, dilationHeight, dilationWidth, pad } = g;
  const inPlane = inHeight * inWidth;
  const firstRow = Math.floor(first / outWidth);
  const firstColumn = first - firstRow * outWidth;
  let to = 0;
  for (let c = 0; c < channels; c++) {
    const plane = xStart + c * inPlane;
    for (let p = 0; p < kernelHeight; p++) {
      const rowOffset = p * dilationHeight - pad.top;
      for (let q = 0; q < kernelWidth; q++) {
        const columnOffset = q * dilationWidth - pad.left;
        const jInside = tapBegin(columnOffset, strideWidth, outWidth);
        const jOutside = tapEnd(columnOffset, strideWidth, inWidth, outWidth);
        const end = to + count;
        let i = firstRow;
        let j = firstColumn;
        while (to < end) {
          const jEnd = Math.min(outWidth, j + (end - to));
          const h = i * strideHeight + rowOffset;
          if (h < 0 || h >= inHeight) {
            columns.fill(0, to, to + (jEnd - j));
            to += jEnd - j;
          } else {
            const source = plane + h * inWidth + columnOffset;
            const inside = Math.max(jInside, j);
            const outside = Math.min(jOutside, jEnd);
            for (; j < inside && j < jEnd; j++) columns[to++] = 0;
            for (; j < outside; j++) columns[to++] = x[source + j * strideWidth] as number;
            for (; j < jEnd; j++) columns[to++] = 0;
          }
          i++;
          j = 0;
        }
      }
    }
  }
}

/** The adjoint of im2colNchw: adds every column entry to the dx element it was copied from. */
function col2imNchw(
  dx: Float32Array,
  xStart: number,
  channels: number,
  g: Conv2dGeometry,
  first: number,
  count: number,
  columns: Float32Array,
): void {
  const { inHeight, inWidth, outWidth, strideHeight, strideWidth, kernelHeight, kernelWidth, dilationHeight, dilationWidth, pad } = g;
  const inPlane = inHeight * inWidth;
  const firstRow = Math.floor(first / outWidth);
  const firstColumn = first - firstRow * outWidth;
  let from = 0;
  for (let c = 0; c < channels; c++) {
    const plane = xStart + c * inPlane;
    for (let p = 0; p < kernelHeight; p++) {
      const rowOffset = p * dilationHeight - pad.top;
      for (let q = 0; q < kernelWidth; q++) {
        const columnOffset = q * dilationWidth - pad.left;
        const jInside = tapBegin(columnOffset, strideWidth, outWidth);
        const jOutside = tapEnd(columnOffset, strideWidth, inWidth, outWidth);
        const end = from + count;
        let i = firstRow;
        let j = firstColumn;
        while (from < end) {
          const jEnd = Math.min(outWidth, j + (end - from));
          const h = i * strideHeight + rowOffset;
          if (h >= 0 && h < inHeight) {
            const target = plane + h * inWidth + columnOffset;
            const inside = Math.max(jInside, j);
            const outside = Math.min(jOutside, jEnd);
            for (let jj = inside; jj < outside; jj++) {
              const at = target + jj * strideWidth;
              dx[at] = (dx[at] as number) + (columns[from + jj - j] as number);
            }
          }
          from += jEnd - j;
          i++;
          j = 0;
        }
      }
    }
  }
}

/**
 * NHWC im2col of `channels` channels from channelStart (a group's, or a range of them) for output pixels
 * first .. first+count-1 of the whole batch: columns[pixel][(p * kW + q) * channels + c], one row of
 * kH * kW * channels floats per pixel, built from contiguous channel runs (zeros where the tap falls in
 * the padding).
 */
function im2colNhwc(
  x: Float32Array,
  channelStart: number,
  channels: number,
  g: Conv2dGeometry,
  first: number,
  count: number,
  columns: Float32Array,
): void {
  const { inChannels, inHeight, inWidth, outHeight, outWidth, strideHeight, strideWidth, kernelHeight, kernelWidth } = g;
  const { dilationHeight, dilationWidth, pad } = g;
  const rowLength = inWidth * inChannels;
  const imageLength = inHeight * rowLength;
  const pixelsPerImage = outHeight * outWidth;
  let n = Math.floor(first / pixelsPerImage);
  let i = Math.floor((first - n * pixelsPerImage) / outWidth);
  let j = first - n * pixelsPerImage - i * outWidth;
  let to = 0;
  for (let pixel = 0; pixel < count; pixel++) {
    const image = n * imageLength + channelStart;
    for (let p = 0; p < kernelHeight; p++) {
      const h = i * strideHeight - pad.top + p * dilationHeight;
      if (h < 0 || h >= inHeight) {
        columns.fill(0, to, to + kernelWidth * channels);
        to += kernelWidth * channels;
        continue;
      }
      const row = image + h * rowLength;
      for (let q = 0; q < kernelWidth; q++) {
        const v = j * strideWidth - pad.left + q * dilationWidth;
        if (v < 0 || v >= inWidth) {
          for (let c = 0; c < channels; c++) columns[to++] = 0;
        } else {
          let from = row + v * inChannels;
          for (let c = 0; c < channels; c++) columns[to++] = x[from++] as number;
        }
      }
    }
    if (++j === outWidth) {
      j = 0;
      if (++i === outHeight) {
        i = 0;
        n++;
      }
    }
  }
}

/** The adjoint of im2colNhwc: adds every column entry to the dx element it was copied from. */
function col2imNhwc(
  dx: Float32Array,
  channelStart: number,
  channels: number,
  g: Conv2dGeometry,
  first: number,
  count: number,
  columns: Float32Array,
): void {
  const { inChannels, inHeight, inWidth, outHeight, outWidth, strideHeight, strideWidth, kernelHeight, kernelWidth } = g;
  const { dilationHeight, dilationWidth, pad } = g;
  const rowLength = inWidth * inChannels;
  const imageLength = inHeight * rowLength;
  const pixelsPerImage = outHeight * outWidth;
  let n = Math.floor(first / pixelsPerImage);
  let i = Math.floor((first - n * pixelsPerImage) / outWidth);
  let j = first - n * pixelsPerImage - i * outWidth;
  let from = 0;
  for (let pixel = 0; pixel < count; pixel++) {
    const image = n * imageLength + channelStart;
    for (let p = 0; p < kernelHeight; p++) {
      const h = i * strideHeight - pad.top + p * dilationHeight;
      if (h < 0 || h >= inHeight) {
        from += kernelWidth * channels;
        continue;
      }
      const row = image + h * rowLength;
      for (let q = 0; q < kernelWidth; q++) {
        const v = j * strideWidth - pad.left + q * dilationWidth;
        if (v < 0 || v >= inWidth) {
          from += channels;
        } else {
          let to = row + v * inChannels;
          for (let c = 0; c < channels; c++, to++) dx[to] = (dx[to] as number) + (columns[from++] as number);
        }
      }
    }
    if (++j === outWidth) {
      j = 0;
      if (++i === outHeight) {
        i = 0;
        n++;
      }
    }
  }
}

// ---- Thin groups (fewer than 4 output channels each): direct loops, no GEMM ----

/**
 * NCHW: for each output plane and each tap (c, p, q), y's plane gets w[o, c, p, q] times the shifted (and
 * strided) input plane, over the rectangle of outputs whose tap lands inside the input: an axpy along
 * output rows, no bounds test inside. y holds the bias (or zeros) on entry.
 */
function directForwardNchw(x: Float32Array, weight: Tensor, y: Float32Array, g: Conv2dGeometry): void {
  const { batch, inChannels, inHeight, inWidth, outChannels, outHeight, outWidth, inChannelsPerGroup, outChannelsPerGroup } = g;
  const { kernelHeight, kernelWidth, strideHeight, strideWidth, dilationHeight, dilationWidth, pad } = g;
  const w = weight.data as Float32Array;
  const [outStride, inStride, rowStride, colStride] = weight.strides as [number, number, number, number];
  const inPlane = inHeight * inWidth;
  const outPlane = outHeight * outWidth;
  for (let n = 0; n < batch; n++) {
    for (let o = 0; o < outChannels; o++) {
      const yPlane = (n * outChannels + o) * outPlane;
      const firstIn = Math.floor(o / outChannelsPerGroup) * inChannelsPerGroup;
      for (let c = 0; c < inChannelsPerGroup; c++) {
        const xPlane = (n * inChannels + firstIn + c) * inPlane;
        for (let p = 0; p < kernelHeight; p++) {
          const rowOffset = p * dilationHeight - pad.top;
          const iStart = tapBegin(rowOffset, strideHeight, outHeight);
          const iEnd = tapEnd(rowOffset, strideHeight, inHeight, outHeight);
          for (let q = 0; q < kernelWidth; q++) {
            const columnOffset = q * dilationWidth - pad.left;
            const jStart = tapBegin(columnOffset, strideWidth, outWidth);
            const jEnd = tapEnd(columnOffset, strideWidth, inWidth, outWidth);
            const tap = w[o * outStride + c * inStride + p * rowStride + q * colStride] as number;
            for (let i = iStart; i < iEnd; i++) {
              const yRow = yPlane + i * outWidth;
              const xRow = xPlane + (i * strideHeight + rowOffset) * inWidth + columnOffset;
              for (let j = jStart; j < jEnd; j++) y[yRow + j] = (y[yRow + j] as number) + tap * (x[xRow + j * strideWidth] as number);
            }
          }
        }
      }
    }
  }
}

/** The forward's loops run once more: each (output, tap) pair sends dy * w to dx and dy * x to dw. */
function directBackwardNchw(
  dy: Float32Array,
  x: Float32Array,
  weight: Tensor,
  dx: Float32Array,
  dw: Float32Array,
  g: Conv2dGeometry,
): void {
  const { batch, inChannels, inHeight, inWidth, outChannels, outHeight, outWidth, inChannelsPerGroup, outChannelsPerGroup } = g;
  const { kernelHeight, kernelWidth, strideHeight, strideWidth, dilationHeight, dilationWidth, pad } = g;
  const w = weight.data as Float32Array;
  const [outStride, inStride, rowStride, colStride] = weight.strides as [number, number, number, number];
  const inPlane = inHeight * inWidth;
  const outPlane = outHeight * outWidth;
  for (let n = 0; n < batch; n++) {
    for (let o = 0; o < outChannels; o++) {
      const yPlane = (n * outChannels + o) * outPlane;
      const firstIn = Math.floor(o / outChannelsPerGroup) * inChannelsPerGroup;
      for (let c = 0; c < inChannelsPerGroup; c++) {
        const xPlane = (n * inChannels + firstIn + c) * inPlane;
        for (let p = 0; p < kernelHeight; p++) {
          const rowOffset = p * dilationHeight - pad.top;
          const iStart = tapBegin(rowOffset, strideHeight, outHeight);
          const iEnd = tapEnd(rowOffset, strideHeight, inHeight, outHeight);
          for (let q = 0; q < kernelWidth; q++) {
            const columnOffset = q * dilationWidth - pad.left;
            const jStart = tapBegin(columnOffset, strideWidth, outWidth);
            const jEnd = tapEnd(columnOffset, strideWidth, inWidth, outWidth);
            const tapAt = o * outStride + c * inStride + p * rowStride + q * colStride;
            const tap = w[tapAt] as number;
            let tapGradient = 0;
            for (let i = iStart; i < iEnd; i++) {
              const yRow = yPlane + i * outWidth;
              const xRow = xPlane + (i * strideHeight + rowOffset) * inWidth + columnOffset;
              for (let j = jStart; j < jEnd; j++) {
                const gradient = dy[yRow + j] as number;
                const at = xRow + j * strideWidth;
                tapGradient += gradient * (x[at] as number);
                dx[at] = (dx[at] as number) + tap * gradient;
              }
            }
            dw[tapAt] = (dw[tapAt] as number) + tapGradient;
          }
        }
      }
    }
  }
}

/** Per output channel, the index of its group's first input channel (module-level, grown as needed). */
let firstInputChannel = new Int32Array(0);

function firstInputChannels(g: Conv2dGeometry): Int32Array {
  if (firstInputChannel.length < g.outChannels) firstInputChannel = new Int32Array(g.outChannels);
  for (let o = 0; o < g.outChannels; o++) firstInputChannel[o] = Math.floor(o / g.outChannelsPerGroup) * g.inChannelsPerGroup;
  return firstInputChannel;
}

/**
 * The weight tap-major, [kH * kW][Cin_g][Cout] (scratch), so that the NHWC loops read it along output
 * channels, contiguous like y's pixel.
 */
function tapMajorWeights(weight: Tensor, g: Conv2dGeometry): Float32Array {
  const { outChannels, inChannelsPerGroup, kernelHeight, kernelWidth } = g;
  const w = weight.data as Float32Array;
  const [outStride, inStride, rowStride, colStride] = weight.strides as [number, number, number, number];
  const taps = scratchF32('conv2d.tapMajorWeights', weight.size);
  let at = 0;
  for (let p = 0; p < kernelHeight; p++) {
    for (let q = 0; q < kernelWidth; q++) {
      for (let c = 0; c < inChannelsPerGroup; c++) {
        for (let o = 0; o < outChannels; o++) taps[at++] = w[o * outStride + c * inStride + p * rowStride + q * colStride] as number;
      }
    }
  }
  return taps;
}

/**
 * NHWC: for each output pixel and each tap inside the input, its Cout outputs (contiguous) each add
 * w * x of their group's input channel: the loop runs along output channels, reading tap-major weights
 * and x through the group table. y holds the bias (or zeros) on entry.
 */
function directForwardNhwc(x: Float32Array, weight: Tensor, y: Float32Array, g: Conv2dGeometry): void {
  const { batch, inChannels, inHeight, inWidth, outChannels, outHeight, outWidth, inChannelsPerGroup } = g;
  const { kernelHeight, kernelWidth, strideHeight, strideWidth, dilationHeight, dilationWidth, pad } = g;
  const taps = tapMajorWeights(weight, g);
  const firstIn = firstInputChannels(g);
  let yPixel = 0;
  for (let n = 0; n < batch; n++) {
    for (let i = 0; i < outHeight; i++) {
      for (let j = 0; j < outWidth; j++, yPixel += outChannels) {
        for (let p = 0; p < kernelHeight; p++) {
          const h = i * strideHeight - pad.top + p * dilationHeight;
          if (h < 0 || h >= inHeight) continue;
          for (let q = 0; q < kernelWidth; q++) {
            const v = j * strideWidth - pad.left + q * dilationWidth;
            if (v < 0 || v >= inWidth) continue;
            const xPixel = ((n * inHeight + h) * inWidth + v) * inChannels;
            for (let c = 0; c < inChannelsPerGroup; c++) {
              const tapRow = ((p * kernelWidth + q) * inChannelsPerGroup + c) * outChannels;
              const xChannel = xPixel + c;
              for (let o = 0; o < outChannels; o++) {
                y[yPixel + o] = (y[yPixel + o] as number) + (taps[tapRow + o] as number) * (x[xChannel + (firstIn[o] as number)] as number);
              }
            }
          }
        }
      }
    }
  }
}

/** The forward's loops run once more, sending dy * w to dx and dy * x to the tap-major dw (then stored in dweight's layout). */
function directBackwardNhwc(dy: Float32Array, x: Float32Array, weight: Tensor, dx: Float32Array, dweight: Tensor, g: Conv2dGeometry): void {
  const { batch, inChannels, inHeight, inWidth, outChannels, outHeight, outWidth, inChannelsPerGroup } = g;
  const { kernelHeight, kernelWidth, strideHeight, strideWidth, dilationHeight, dilationWidth, pad } = g;
  const taps = tapMajorWeights(weight, g);
  const tapGradients = scratchF32('conv2d.tapMajorGradients', weight.size).fill(0, 0, weight.size);
  const firstIn = firstInputChannels(g);
  let yPixel = 0;
  for (let n = 0; n < batch; n++) {
    for (let i = 0; i < outHeight; i++) {
      for (let j = 0; j < outWidth; j++, yPixel += outChannels) {
        for (let p = 0; p < kernelHeight; p++) {
          const h = i * strideHeight - pad.top + p * dilationHeight;
          if (h < 0 || h >= inHeight) continue;
          for (let q = 0; q < kernelWidth; q++) {
            const v = j * strideWidth - pad.left + q * dilationWidth;
            if (v < 0 || v >= inWidth) continue;
            const xPixel = ((n * inHeight + h) * inWidth + v) * inChannels;
            for (let c = 0; c < inChannelsPerGroup; c++) {
              const tapRow = ((p * kernelWidth + q) * inChannelsPerGroup + c) * outChannels;
              const xChannel = xPixel + c;
              for (let o = 0; o < outChannels; o++) {
                const gradient = dy[yPixel + o] as number;
                const at = xChannel + (firstIn[o] as number);
                dx[at] = (dx[at] as number) + (taps[tapRow + o] as number) * gradient;
                tapGradients[tapRow + o] = (tapGradients[tapRow + o] as number) + gradient * (x[at] as number);
              }
            }
          }
        }
      }
    }
  }
  const dw = dweight.data as Float32Array;
  const [outStride, inStride, rowStride, colStride] = dweight.strides as [number, number, number, number];
  let at = 0;
  for (let p = 0; p < kernelHeight; p++) {
    for (let q = 0; q < kernelWidth; q++) {
      for (let c = 0; c < inChannelsPerGroup; c++) {
        for (let o = 0; o < outChannels; o++)
          dw[o * outStride + c * inStride + p * rowStride + q * colStride] = tapGradients[at++] as number;
      }
    }
  }
}
