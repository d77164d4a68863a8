export { BatchNorm2d, type BatchNorm2dLayerOptions } from './batch-norm2d.js';
export { ChannelShuffle } from './channel-shuffle.js';
export { Conv2d, type Conv2dLayerOptions } from './conv2d.js';
export { DepthwiseConv2d, type DepthwiseConv2dLayerOptions } from './depthwise-conv2d.js';
export { Layer, makeParameter, windowOutputSize } from './layer.js';
export { Linear, type LinearLayerOptions } from './linear.js';
export { AvgPool2d, GlobalAvgPool2d, MaxPool2d, type PoolWindow } from './pooling.js';
export { ReLU } from './relu.js';
