import type { Direction, Suite } from '../cases/case.js';
import type { MemoryUse } from '../method/memory.js';
import type { Timing } from '../method/timing.js';
import type { Validation } from '../method/validate.js';
import type { PhaseResult } from './phases.js';

/** How one target did on one case. */
export type Status =
  /** Validated and timed. */
  | 'ok'
  /** The target cannot run this case (e.g. a backward on an inference-only library). */
  | 'unsupported'
  /** The target could not be opened at all (e.g. a missing native add-on). */
  | 'unavailable'
  /** Its outputs disagree with the reference's: not timed. */
  | 'invalid'
  /** It threw, or its process died. */
  | 'failed';

/** One implementation of a case on a target, timed when valid. */
export interface VariantResult {
  variant?: string;
  note?: string;
  status: 'ok' | 'invalid' | 'failed';
  reason?: string;
  timing?: Timing;
  validation?: Validation;
  /** Asynchronous (gpu) targets: the time split into compile, upload, run and readback (see phases.ts). */
  phases?: PhaseResult;
}

export interface CaseResult {
  target: string;
  kind: 'ours' | 'peer';
  suite: Suite;
  caseId: string;
  caseKey: string;
  direction: Direction;
  title: string;
  status: Status;
  reason?: string;
  /** The variant reported (the fastest valid one). */
  variant?: string;
  note?: string;
  timing?: Timing;
  validation?: Validation;
  /** Asynchronous (gpu) targets: the time split into compile, upload, run and readback (see phases.ts). */
  phases?: PhaseResult;
  /** Every variant the target tried, the reported one included, when there were several. */
  variants?: VariantResult[];
  /** Memory while the case was prepared and run (whole-network cases that ran). */
  memory?: MemoryUse;
  /**
   * A whole-network case whose process probed as a slow core (method/core.ts) is run once more in a fresh
   * process, and the attempt whose probe was faster is reported: which one that was, and the other, whole.
   */
  slowCoreRerun?: { kept: 'first' | 'rerun'; other: CaseResult };
  flops: number;
  bytes: number;
}

/** Messages from a target's process to the runner. */
export type RunnerEvent =
  | { type: 'start'; target: string; caseKey: string }
  | { type: 'details'; target: string; details: Record<string, string> }
  | { type: 'result'; result: CaseResult };
