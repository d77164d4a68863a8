import { readdirSync } from 'node:fs';
import type { ConformanceSpec } from '../spec.js';

/** Every op spec: each file in specs/ default-exports one. Adding an op means adding a file there. */
export async function loadSpecs(): Promise<ConformanceSpec[]> {
  const dir = new URL('../specs/', import.meta.url);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .sort();
  const specs: ConformanceSpec[] = [];
  for (const file of files) {
    const module = (await import(new URL(file, dir).href)) as { default?: ConformanceSpec };
    if (!module.default) throw new Error(`test/conformance/specs/${file} must default-export a ConformanceSpec`);
    specs.push(module.default);
  }
  return specs;
}
