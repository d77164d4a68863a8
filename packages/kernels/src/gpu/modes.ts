/**
 * Opening gpu.js on an explicitly named mode. Nothing here is imported at module load: gpu.js, `gl`
 * and `webgpu` are loaded by `import()` when a mode is first checked or opened, so a CPU-only user of
 * @shuffle/kernels never loads them.
 *
 * Why explicit modes: gpu.js's own 'gpu' and 'async' modes pick a backend from the environment
 * (webasm without a display, headlessgl under Xvfb, webgpu when navigator.gpu exists), so the same code
 * would silently run on different backends on different machines.
 */
import type { GPU } from 'gpu.js';

export type GpuMode = 'cpu' | 'webasm' | 'headlessgl' | 'webgpu';
export const GPU_MODES: readonly GpuMode[] = ['cpu', 'webasm', 'headlessgl', 'webgpu'];

export type GpuModeStatus = { mode: GpuMode; available: true } | { mode: GpuMode; available: false; reason: string };

export class GpuUnavailableError extends Error {
  constructor(
    readonly mode: GpuMode,
    reason: string,
  ) {
    super(`gpu mode '${mode}' is unavailable: ${reason}`);
    this.name = 'GpuUnavailableError';
  }
}

/**
 * headlessgl (GLX on X) and webgpu (Dawn on EGL) both drive Mesa, and in one process the second one
 * fails: no WebGPU adapter after headlessgl, or an X BadAccess that kills the process after webgpu. So
 * the first of the two to be opened claims the process and the other is refused with a clear reason.
 */
let glModeInProcess: 'headlessgl' | 'webgpu' | undefined;

const APT_GL =
  'apt-get install xvfb xauth libgl1-mesa-dri libxi-dev libxext-dev libx11-dev mesa-common-dev libgl1-mesa-dev pkg-config python-is-python3';
const APT_EGL = 'apt-get install libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri';

/** Whether `mode` can run in this process, and if not, why and how to get it. Never throws. */
export async function checkGpuMode(mode: GpuMode): Promise<GpuModeStatus> {
  try {
    await prepareMode(mode);
    return { mode, available: true };
  } catch (error) {
    return { mode, available: false, reason: error instanceof GpuUnavailableError ? reasonOf(error) : String(error) };
  }
}

/** A gpu.js instance on exactly `mode`, or a GpuUnavailableError that says why and how to fix it. */
export async function openGpu(mode: GpuMode): Promise<GPU> {
  const GPUClass = await prepareMode(mode);
  return new GPUClass({ mode });
}

function reasonOf(error: GpuUnavailableError): string {
  return error.message.replace(/^gpu mode '[^']+' is unavailable: /, '');
}

async function loadGpuJs(mode: GpuMode): Promise<typeof GPU> {
  try {
    const module = await import('gpu.js');
    return module.GPU;
  } catch (error) {
    throw new GpuUnavailableError(mode, `gpu.js could not be loaded (${(error as Error).message}); install it with \`npm install gpu.js\``);
  }
}

async function prepareMode(mode: GpuMode): Promise<typeof GPU> {
  if (!GPU_MODES.includes(mode)) {
    throw new GpuUnavailableError(mode, `unknown mode; expected one of ${GPU_MODES.map((m) => `'${m}'`).join(', ')}`);
  }
  const GPUClass = await loadGpuJs(mode);
  if (mode === 'webasm' && !GPUClass.isWebAssemblySupported) {
    throw new GpuUnavailableError(mode, 'this JavaScript engine has no WebAssembly');
  }
  if (mode === 'headlessgl') await prepareHeadlessGl(GPUClass);
  if (mode === 'webgpu') await prepareWebGpu(GPUClass);
  return GPUClass;
}

function checkGlModeFree(mode: 'headlessgl' | 'webgpu'): void {
  if (glModeInProcess && glModeInProcess !== mode) {
    throw new GpuUnavailableError(
      mode,
      `this process already opened '${glModeInProcess}', and headlessgl and webgpu cannot share a process (both drive Mesa's GL); run them in separate processes`,
    );
  }
}

async function prepareHeadlessGl(GPUClass: typeof GPU): Promise<void> {
  checkGlModeFree('headlessgl');
  let createGl: (width: number, height: number) => unknown;
  try {
    createGl = (await import('gl')).default;
  } catch (error) {
    throw new GpuUnavailableError(
      'headlessgl',
      `the native 'gl' add-on is missing or failed to build (${(error as Error).message.split('\n')[0]}). ` +
        `Install the build and GL packages (\`${APT_GL}\`), then run \`npm_config_nodedir=/usr pnpm rebuild gl\``,
    );
  }
  if (!process.env.DISPLAY) {
    throw new GpuUnavailableError('headlessgl', 'headlessgl needs an X display: run under `xvfb-run -a` (package xvfb)');
  }
  glModeInProcess = 'headlessgl';
  if (!createGl(1, 1)) {
    throw new GpuUnavailableError(
      'headlessgl',
      `'gl' could not create a context on DISPLAY=${process.env.DISPLAY}: is an X server with GLX running there? (Xvfb with Mesa: \`${APT_GL}\`)`,
    );
  }
  if (!GPUClass.isHeadlessGLSupported) {
    throw new GpuUnavailableError('headlessgl', 'gpu.js reports headless-gl unsupported although a context opened');
  }
}

/**
 * Dawn (the `webgpu` package) on its OpenGL ES backend over Mesa's EGL, with a `navigator.gpu` for gpu.js.
 * Dawn's Vulkan backend on lavapipe lacks a feature it requires, and Mesa's GLES adapter only offers the
 * 'compatibility' feature level. EGL_PLATFORM=surfaceless lets EGL work with no display at all.
 */
async function prepareWebGpu(GPUClass: typeof GPU): Promise<void> {
  checkGlModeFree('webgpu');
  if ((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu === undefined) {
    process.env.EGL_PLATFORM ??= 'surfaceless';
    let dawn: { create(options: string[]): { requestAdapter(options?: object): Promise<unknown> }; globals: object };
    try {
      dawn = (await import('webgpu')) as unknown as typeof dawn;
    } catch (error) {
      throw new GpuUnavailableError(
        'webgpu',
        `the 'webgpu' package (Dawn for Node) could not be loaded (${(error as Error).message.split('\n')[0]}); install webgpu@0.6.2`,
      );
    }
    glModeInProcess = 'webgpu';
    Object.assign(globalThis, dawn.globals);
    const instance = dawn.create(['backend=opengles']);
    const gpu = {
      requestAdapter: (options: object = {}) => instance.requestAdapter({ featureLevel: 'compatibility', ...options }),
      getPreferredCanvasFormat: () => 'rgba8unorm',
    };
    const navigator = (globalThis as { navigator?: object }).navigator;
    if (navigator) Object.defineProperty(navigator, 'gpu', { value: gpu, configurable: true });
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  }
  if (!(await GPUClass.isWebGPUAvailable())) {
    throw new GpuUnavailableError(
      'webgpu',
      `Dawn found no OpenGL ES adapter. It needs Mesa's EGL and GLES (\`${APT_EGL}\`) and, without an X display, EGL_PLATFORM=surfaceless`,
    );
  }
}
