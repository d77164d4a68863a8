import type { Tensor } from '@shuffle/core';
import { sgemm } from '../common/gemm.js';
import { allocLike } from '../common/indexing.js';
import { scratchF32 } from '../common/scratch.js';
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
 * float64 exists for gradient checks only: it goes to the reference.
 */

export const conv2dCpu: Conv2dOps = {
  conv2d(x, weight, options?: Conv2dOptions) {
    const geometry = conv2dGeometry('conv2d', x, weight, options);
    if (x.dtype === 'float64') return conv2dReference.conv2d(x, weight, options);
    const { batch, outChannels, outHeight, outWidth, bias } = geometry;
    const y = allocLike(x, [batch, outChannels, outHeight, outWidth]);
    if (batch === 0) return y;
    const xData = x.data as Float32Array;
    const yData = y.data as Float32Array;
    // With a bias, y starts as the bias and the products add to it.
    if (bias) fillBias(yData, bias.data as Float32Array, x.layout === 'NHWC', batch, outChannels, outHeight * outWidth);
    const accumulate = bias !== undefined;
    const nhwc = x.layout === 'NHWC';
    if (isThin(geometry)) {
      if (nhwc) directForwardNhwc(xData, weight, yData, geometry);
      else directForwardNchw(xData, weight, yData, geometry);
    } else if (isPointwise(geometry)) {
      if (nhwc) pointwiseForwardNhwc(xData, weight, yData, geometry, accumulate);
      else pointwiseForwardNchw(xData, weight, yData, geometry, accumulate);
    } else {
      const weights = weightMatrix(weight, nhwc, geometry);
      if (nhwc) im2colForwardNhwc(xData, weights, yData, geometry, accumulate);
      else im2colForwardNchw(xData, weights, yData, geometry, accumulate);
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
    const dx = allocLike(x, x.shape);
    const dweight = allocLike(weight, weight.shape);
    const nhwc = x.layout === 'NHWC';
    if (batch > 0) {
      const xData = x.data as Float32Array;
      const dyData = dy.data as Float32Array;
      const dxData = dx.data as Float32Array;
      if (isThin(geometry)) {
        if (nhwc) directBackwardNhwc(dyData, xData, weight, dxData, dweight, geometry);
        else directBackwardNchw(dyData, xData, weight, dxData, dweight.data as Float32Array, geometry);
      } else if (isPointwise(geometry)) {
        if (nhwc) pointwiseBackwardNhwc(dyData, xData, weight, dxData, dweight.data as Float32Array, geometry);
        else pointwiseBackwardNchw(dyData, xData, weight, dxData, dweight.data as Float32Array, geometry);
      } else {
        const weights = weightMatrix(weight, nhwc, geometry);
        // dW is accumulated over chunks and images in K order: in dweight itself when that is its memory order.
        const inPlace = weightInKOrder(weight, nhwc, geometry);
        const dweights = inPlace ? (dweight.data as Float32Array) : scratchF32('conv2d.dweightMatrix', weight.size).fill(0, 0, weight.size);
        if (nhwc) im2colBackwardNhwc(dyData, xData, weights, dxData, dweights, geometry);
        else im2colBackwardNchw(dyData, xData, weights, dxData, dweights, geometry);
        if (!inPlace) storeWeightMatrix(dweights, dweight, nhwc, geometry);
      }
    }
    if (!bias) return { dx, dweight };
    const dbias = allocLike(bias, bias.shape);
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

// ---- 1x1 stride-1 convolutions: one product per group (NHWC) or per image and group (NCHW) ----

function pointwiseForwardNchw(x: Float32Array, weight: Tensor, y: Float32Array, g: Conv2dGeometry, accumulate: boolean): void {
  const { batch, inChannels, outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const pixels = g.outHeight * g.outWidth;
  const [outStride, inStride] = weight.strides as [number, number];
  const w = weight.data as Float32Array;
  for (let n = 0; n < batch; n++) {
    for (let group = 0; group < groups; group++) {
      // Y_g [Cout_g x pixels] = W_g [Cout_g x Cin_g] * X_g [Cin_g x pixels]
      sgemm(
        outChannelsPerGroup,
        pixels,
        inChannelsPerGroup,
        w,
        group * outChannelsPerGroup * outStride,
        outStride,
        inStride,
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

function pointwiseForwardNhwc(x: Float32Array, weight: Tensor, y: Float32Array, g: Conv2dGeometry, accumulate: boolean): void {
  const { inChannels, outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const pixels = g.batch * g.outHeight * g.outWidth;
  const [outStride, inStride] = weight.strides as [number, number];
  const w = weight.data as Float32Array;
  for (let group = 0; group < groups; group++) {
    // Y_g [pixels x Cout_g] = X_g [pixels x Cin_g] * W_g^T [Cin_g x Cout_g], rows C (or Cout) apart.
    sgemm(
      pixels,
      outChannelsPerGroup,
      inChannelsPerGroup,
      x,
      group * inChannelsPerGroup,
      inChannels,
      1,
      w,
      group * outChannelsPerGroup * outStride,
      inStride,
      outStride,
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
  weight: Tensor,
  dx: Float32Array,
  dw: Float32Array,
  g: Conv2dGeometry,
): void {
  const { batch, inChannels, outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const pixels = g.outHeight * g.outWidth;
  const [outStride, inStride] = weight.strides as [number, number];
  const w = weight.data as Float32Array;
  for (let n = 0; n < batch; n++) {
    for (let group = 0; group < groups; group++) {
      const xStart = (n * inChannels + group * inChannelsPerGroup) * pixels;
      const dyStart = (n * outChannels + group * outChannelsPerGroup) * pixels;
      const wStart = group * outChannelsPerGroup * outStride;
      // dW_g [Cout_g x Cin_g] += dY_g [Cout_g x pixels] * X_g^T [pixels x Cin_g]  (dweight starts at zero)
      sgemm(
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
        outStride,
        inStride,
        true,
      );
      // dX_g [Cin_g x pixels] = W_g^T [Cin_g x Cout_g] * dY_g [Cout_g x pixels]
      sgemm(
        inChannelsPerGroup,
        pixels,
        outChannelsPerGroup,
        w,
        wStart,
        inStride,
        outStride,
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
  weight: Tensor,
  dx: Float32Array,
  dw: Float32Array,
  g: Conv2dGeometry,
): void {
  const { inChannels, outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const pixels = g.batch * g.outHeight * g.outWidth;
  const [outStride, inStride] = weight.strides as [number, number];
  const w = weight.data as Float32Array;
  for (let group = 0; group < groups; group++) {
    const xStart = group * inChannelsPerGroup;
    const dyStart = group * outChannelsPerGroup;
    const wStart = group * outChannelsPerGroup * outStride;
    // dW_g [Cout_g x Cin_g] = dY_g^T [Cout_g x pixels] * X_g [pixels x Cin_g]
    sgemm(
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
      outStride,
      inStride,
      false,
    );
    // dX_g [pixels x Cin_g] = dY_g [pixels x Cout_g] * W_g [Cout_g x Cin_g]
    sgemm(
      pixels,
      inChannelsPerGroup,
      outChannelsPerGroup,
      dy,
      dyStart,
      outChannels,
      1,
      w,
      wStart,
      outStride,
      inStride,
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

function im2colForwardNchw(x: Float32Array, weights: Float32Array, y: Float32Array, g: Conv2dGeometry, accumulate: boolean): void {
  const { batch, inChannels, outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const terms = inChannelsPerGroup * g.kernelHeight * g.kernelWidth;
  const pixels = g.outHeight * g.outWidth;
  const inPlane = g.inHeight * g.inWidth;
  const chunk = chunkPixels(terms, pixels);
  const columns = scratchF32('conv2d.columns', terms * chunk);
  for (let n = 0; n < batch; n++) {
    for (let group = 0; group < groups; group++) {
      const xStart = (n * inChannels + group * inChannelsPerGroup) * inPlane;
      for (let first = 0; first < pixels; first += chunk) {
        const count = Math.min(chunk, pixels - first);
        im2colNchw(x, xStart, g, first, count, columns);
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

function im2colForwardNhwc(x: Float32Array, weights: Float32Array, y: Float32Array, g: Conv2dGeometry, accumulate: boolean): void {
  const { outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const terms = inChannelsPerGroup * g.kernelHeight * g.kernelWidth;
  const pixels = g.batch * g.outHeight * g.outWidth;
  const chunk = chunkPixels(terms, pixels);
  const columns = scratchF32('conv2d.columns', terms * chunk);
  for (let first = 0; first < pixels; first += chunk) {
    const count = Math.min(chunk, pixels - first);
    for (let group = 0; group < groups; group++) {
      im2colNhwc(x, group * inChannelsPerGroup, g, first, count, columns);
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

function im2colBackwardNchw(
  dy: Float32Array,
  x: Float32Array,
  weights: Float32Array,
  dx: Float32Array,
  dweights: Float32Array,
  g: Conv2dGeometry,
): void {
  const { batch, inChannels, outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const terms = inChannelsPerGroup * g.kernelHeight * g.kernelWidth;
  const pixels = g.outHeight * g.outWidth;
  const inPlane = g.inHeight * g.inWidth;
  const chunk = chunkPixels(terms, pixels);
  const columns = scratchF32('conv2d.columns', terms * chunk);
  const dcolumns = scratchF32('conv2d.dcolumns', terms * chunk);
  for (let n = 0; n < batch; n++) {
    for (let group = 0; group < groups; group++) {
      const xStart = (n * inChannels + group * inChannelsPerGroup) * inPlane;
      const wStart = group * outChannelsPerGroup * terms;
      for (let first = 0; first < pixels; first += chunk) {
        const count = Math.min(chunk, pixels - first);
        const dyStart = (n * outChannels + group * outChannelsPerGroup) * pixels + first;
        im2colNchw(x, xStart, g, first, count, columns);
        // dW_g [Cout_g x Kg] += dY_g[:, chunk] [Cout_g x count] * Col^T [count x Kg]
        sgemm(outChannelsPerGroup, terms, count, dy, dyStart, pixels, 1, columns, 0, 1, count, dweights, wStart, terms, 1, true);
        // dCol [Kg x count] = W_g^T [Kg x Cout_g] * dY_g[:, chunk] [Cout_g x count]
        sgemm(terms, count, outChannelsPerGroup, weights, wStart, 1, terms, dy, dyStart, pixels, 1, dcolumns, 0, count, 1, false);
        col2imNchw(dx, xStart, g, first, count, dcolumns);
      }
    }
  }
}

function im2colBackwardNhwc(
  dy: Float32Array,
  x: Float32Array,
  weights: Float32Array,
  dx: Float32Array,
  dweights: Float32Array,
  g: Conv2dGeometry,
): void {
  const { outChannels, groups, inChannelsPerGroup, outChannelsPerGroup } = g;
  const terms = inChannelsPerGroup * g.kernelHeight * g.kernelWidth;
  const pixels = g.batch * g.outHeight * g.outWidth;
  const chunk = chunkPixels(terms, pixels);
  const columns = scratchF32('conv2d.columns', terms * chunk);
  const dcolumns = scratchF32('conv2d.dcolumns', terms * chunk);
  for (let first = 0; first < pixels; first += chunk) {
    const count = Math.min(chunk, pixels - first);
    for (let group = 0; group < groups; group++) {
      const dyStart = first * outChannels + group * outChannelsPerGroup;
      const wStart = group * outChannelsPerGroup * terms;
      im2colNhwc(x, group * inChannelsPerGroup, g, first, count, columns);
      // dW_g [Cout_g x Kg] += dY_g[chunk, :]^T [Cout_g x count] * Col [count x Kg]
      sgemm(outChannelsPerGroup, terms, count, dy, dyStart, 1, outChannels, columns, 0, terms, 1, dweights, wStart, terms, 1, true);
      // dCol [count x Kg] = dY_g[chunk, :] [count x Cout_g] * W_g [Cout_g x Kg]
      sgemm(count, terms, outChannelsPerGroup, dy, dyStart, outChannels, 1, weights, wStart, terms, 1, dcolumns, 0, terms, 1, false);
      col2imNhwc(dx, group * inChannelsPerGroup, g, first, count, dcolumns);
    }
  }
}

/**
 * The first output column j of a row whose tap reads input column j * stride + offset inside [0, size),
 * and the end (exclusive) of that range, clamped to [0, outSize]: the window taps between them need no
 * bounds test.
 */
function insideStart(offset: number, stride: number, outSize: number): number {
  const start = offset >= 0 ? 0 : Math.ceil(-offset / stride);
  return Math.min(start, outSize);
}
function insideEnd(offset: number, stride: number, size: number, outSize: number): number {
  if (offset > size - 1) return 0;
  const end = Math.floor((size - 1 - offset) / stride) + 1;
  return Math.min(end, outSize);
}

/**
 * NCHW im2col of one image's group (channels from xStart) for output pixels first .. first+count-1:
 * columns[row][pixel], row = (c * kH + p) * kW + q, `count` floats per row. Each row is a run of output
 * rows; along one output row the tap walks an input row with step strideW, so the copy is a strided read
 * between two zero-filled margins.
 */
function im2colNchw(x: Float32Array, xStart: number, g: Conv2dGeometry, first: number, count: number, columns: Float32Array): void {
  const { inHeight, inWidth, outWidth, strideHeight, strideWidth, kernelHeight, kernelWidth, dilationHeight, dilationWidth, pad } = g;
  const inPlane = inHeight * inWidth;
  const firstRow = Math.floor(first / outWidth);
  const firstColumn = first - firstRow * outWidth;
  let to = 0;
  for (let c = 0; c < g.inChannelsPerGroup; c++) {
    const plane = xStart + c * inPlane;
    for (let p = 0; p < kernelHeight; p++) {
      const rowOffset = p * dilationHeight - pad.top;
      for (let q = 0; q < kernelWidth; q++) {
        const columnOffset = q * dilationWidth - pad.left;
        const jInside = insideStart(columnOffset, strideWidth, outWidth);
        const jOutside = insideEnd(columnOffset, strideWidth, inWidth, outWidth);
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
function col2imNchw(dx: Float32Array, xStart: number, g: Conv2dGeometry, first: number, count: number, columns: Float32Array): void {
  const { inHeight, inWidth, outWidth, strideHeight, strideWidth, kernelHeight, kernelWidth, dilationHeight, dilationWidth, pad } = g;
  const inPlane = inHeight * inWidth;
  const firstRow = Math.floor(first / outWidth);
  const firstColumn = first - firstRow * outWidth;
  let from = 0;
  for (let c = 0; c < g.inChannelsPerGroup; c++) {
    const plane = xStart + c * inPlane;
    for (let p = 0; p < kernelHeight; p++) {
      const rowOffset = p * dilationHeight - pad.top;
      for (let q = 0; q < kernelWidth; q++) {
        const columnOffset = q * dilationWidth - pad.left;
        const jInside = insideStart(columnOffset, strideWidth, outWidth);
        const jOutside = insideEnd(columnOffset, strideWidth, inWidth, outWidth);
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
 * NHWC im2col of group channels channelStart.. for output pixels first .. first+count-1 of the whole
 * batch: columns[pixel][(p * kW + q) * Cin_g + c], one row of Kg floats per pixel, built from runs of
 * Cin_g contiguous channels (zeros where the tap falls in the padding).
 */
function im2colNhwc(x: Float32Array, channelStart: number, g: Conv2dGeometry, first: number, count: number, columns: Float32Array): void {
  const { inChannels, inHeight, inWidth, outHeight, outWidth, strideHeight, strideWidth, kernelHeight, kernelWidth } = g;
  const { dilationHeight, dilationWidth, pad, inChannelsPerGroup } = g;
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
        columns.fill(0, to, to + kernelWidth * inChannelsPerGroup);
        to += kernelWidth * inChannelsPerGroup;
        continue;
      }
      const row = image + h * rowLength;
      for (let q = 0; q < kernelWidth; q++) {
        const v = j * strideWidth - pad.left + q * dilationWidth;
        if (v < 0 || v >= inWidth) {
          for (let c = 0; c < inChannelsPerGroup; c++) columns[to++] = 0;
        } else {
          let from = row + v * inChannels;
          for (let c = 0; c < inChannelsPerGroup; c++) columns[to++] = x[from++] as number;
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
function col2imNhwc(dx: Float32Array, channelStart: number, g: Conv2dGeometry, first: number, count: number, columns: Float32Array): void {
  const { inChannels, inHeight, inWidth, outHeight, outWidth, strideHeight, strideWidth, kernelHeight, kernelWidth } = g;
  const { dilationHeight, dilationWidth, pad, inChannelsPerGroup } = g;
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
        from += kernelWidth * inChannelsPerGroup;
        continue;
      }
      const row = image + h * rowLength;
      for (let q = 0; q < kernelWidth; q++) {
        const v = j * strideWidth - pad.left + q * dilationWidth;
        if (v < 0 || v >= inWidth) {
          from += inChannelsPerGroup;
        } else {
          let to = row + v * inChannels;
          for (let c = 0; c < inChannelsPerGroup; c++, to++) dx[to] = (dx[to] as number) + (columns[from++] as number);
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
          const iStart = insideStart(rowOffset, strideHeight, outHeight);
          const iEnd = insideEnd(rowOffset, strideHeight, inHeight, outHeight);
          for (let q = 0; q < kernelWidth; q++) {
            const columnOffset = q * dilationWidth - pad.left;
            const jStart = insideStart(columnOffset, strideWidth, outWidth);
            const jEnd = insideEnd(columnOffset, strideWidth, inWidth, outWidth);
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
          const iStart = insideStart(rowOffset, strideHeight, outHeight);
          const iEnd = insideEnd(rowOffset, strideHeight, inHeight, outHeight);
          for (let q = 0; q < kernelWidth; q++) {
            const columnOffset = q * dilationWidth - pad.left;
            const jStart = insideStart(columnOffset, strideWidth, outWidth);
            const jEnd = insideEnd(columnOffset, strideWidth, inWidth, outWidth);
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
