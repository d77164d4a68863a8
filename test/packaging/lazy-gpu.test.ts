import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';

/** Lists the GPU packages in require.cache (gpu.js, gl and webgpu are CommonJS or loaded through it) after `code` runs. */
function gpuModulesLoadedBy(code: string): string[] {
  const script = `${code}
const { createRequire } = await import('node:module');
const loaded = Object.keys(createRequire(import.meta.url).cache).filter((p) => /node_modules[\\\\/](gpu\\.js|gl|webgpu)[\\\\/]/.test(p));
console.log(JSON.stringify(loaded));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop() as string) as string[];
}

it('importing @shuffle/kernels and running an op loads no GPU code', () => {
  const loaded = gpuModulesLoadedBy(`
const { randomUniform } = await import('@shuffle/core');
const { relu } = await import('@shuffle/kernels');
relu(randomUniform([1, 2, 3, 3], { seed: 1 }));`);
  expect(loaded).toEqual([]);
});

it('opening a gpu mode does load gpu.js (so the check above can fail)', () => {
  const loaded = gpuModulesLoadedBy(`
const { openGpu } = await import('@shuffle/kernels');
await (await openGpu('cpu')).destroy();`);
  expect(loaded.some((p) => p.includes('gpu.js'))).toBe(true);
});
