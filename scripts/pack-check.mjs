#!/usr/bin/env node
// Proves that the published packages work for a plain Node 20 user: builds dist/, packs @shuffle/core
// and @shuffle/kernels with pnpm (which swaps in publishConfig's dist exports and real versions for
// workspace:*), installs the tarballs into a fresh npm project (no TypeScript, no tsx) and runs a
// script there with plain `node`. Optional dependencies (gl, webgpu) are left out, as a CPU-only user may.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: 'inherit' });
const root = resolve(import.meta.dirname, '..');
const packDir = join(root, '.tmp', 'pack');
rmSync(packDir, { recursive: true, force: true });
mkdirSync(packDir, { recursive: true });

run('pnpm', ['build'], root);
for (const name of ['@shuffle/core', '@shuffle/kernels']) run('pnpm', ['--filter', name, 'pack', '--pack-destination', packDir], root);
const tarballs = readdirSync(packDir).map((f) => join(packDir, f));

const project = mkdtempSync(join(tmpdir(), 'shuffle-pack-'));
writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'pack-check', private: true, type: 'module' }));
run('npm', ['install', '--omit=optional', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs], project);
writeFileSync(
  join(project, 'check.mjs'),
  `import { createRequire } from 'node:module';
import { tensor, randomUniform } from '@shuffle/core';
import { conv2d, channelShuffle, cpu, setNumThreads } from '@shuffle/kernels';

const x = randomUniform([1, 6, 5, 5], { seed: 1, layout: 'NHWC' });
const w = randomUniform([4, 3, 3, 3], { seed: 2 });
const y = conv2d(x, w, { groups: 2, padding: 1 });
if (y.shape.join() !== '1,4,5,5' || y.layout !== 'NHWC') throw new Error('grouped conv gave ' + y);
const s = channelShuffle(tensor([0, 1, 2, 3, 4, 5], [1, 6, 1, 1]), 3);
if (s.toArray().join() !== '0,2,4,1,3,5') throw new Error('channel shuffle gave ' + s.toArray());
const [bx, bw] = [randomUniform([1, 240, 28, 28], { seed: 3 }), randomUniform([60, 80, 1, 1], { seed: 4 })];
const one = cpu.conv2d(bx, bw, { groups: 3 }), two = (setNumThreads(2), cpu.conv2d(bx, bw, { groups: 3 }));
if (two.data.some((v, i) => v !== one.data[i])) throw new Error('a conv on 2 threads (worker from dist) differs from 1 thread');
const loaded = Object.keys(createRequire(import.meta.url).cache).filter((p) => /gpu\\.js|[\\\\/]gl[\\\\/]|webgpu/.test(p));
if (loaded.length) throw new Error('importing @shuffle/kernels loaded GPU code: ' + loaded.join(', '));
console.log('pack-check: grouped conv ' + y + ', channel shuffle and a 2-thread conv ran from the packed tarballs with plain node ' + process.version);
`,
);
run(process.execPath, ['check.mjs'], project);
rmSync(project, { recursive: true, force: true });
