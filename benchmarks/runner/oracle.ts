import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tensor } from '@shuffle/core';
import { reference } from '@shuffle/kernels';
import type { NetworkCase } from '../cases/case.js';
import { buildModel, type CanonicalNetwork, trainingStep } from '../cases/model.js';
import type { HostOutputs } from '../method/validate.js';
import { hostOf } from '../method/validate.js';
import { trainingOutputs } from '../targets/ours.js';

/**
 * The reference's outputs for the whole-network cases. They cost as much as a reference run (tens of
 * seconds at 224x224), so each is computed once per `pnpm bench` and kept in a directory the processes
 * share: by the reference target's own first run when it is measured, else by the first process that
 * needs it.
 */
export class OracleStore {
  private readonly memory = new Map<string, HostOutputs>();

  constructor(private readonly dir?: string) {
    if (dir) mkdirSync(dir, { recursive: true });
  }

  private file(key: string): string {
    return join(this.dir as string, `${key.replace(/[^a-zA-Z0-9.@-]+/g, '_')}.json`);
  }

  get(key: string): HostOutputs | undefined {
    const cached = this.memory.get(key);
    if (cached || !this.dir) return cached;
    try {
      const stored = JSON.parse(readFileSync(this.file(key), 'utf8')) as Record<string, { shape: number[]; data: string }>;
      const outputs: HostOutputs = {};
      for (const [name, { shape, data }] of Object.entries(stored)) {
        const bytes = Buffer.from(data, 'base64');
        outputs[name] = { shape, data: new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8).slice() };
      }
      this.memory.set(key, outputs);
      return outputs;
    } catch {
      return undefined;
    }
  }

  put(key: string, outputs: HostOutputs): void {
    this.memory.set(key, outputs);
    if (!this.dir) return;
    const stored: Record<string, { shape: readonly number[]; data: string }> = {};
    for (const [name, { shape, data }] of Object.entries(outputs)) {
      const f64 = Float64Array.from(data);
      stored[name] = { shape, data: Buffer.from(f64.buffer).toString('base64') };
    }
    writeFileSync(this.file(key), JSON.stringify(stored));
  }
}

/** Runs a network case once on the reference backend. */
export async function networkOracle(
  c: NetworkCase,
  net: CanonicalNetwork,
  x: { shape: readonly number[]; data: Float32Array },
  labels: Int32Array,
) {
  const model = await buildModel(c, net, reference);
  const input = tensor(x.data, x.shape);
  if (c.direction === 'forward') return { logits: hostOf(model.forward(input, { training: false })) };
  const { step, loss } = await trainingStep(model, reference, input, labels);
  step();
  return trainingOutputs(loss(), model);
}
