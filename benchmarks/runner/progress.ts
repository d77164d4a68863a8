import type { CaseResult } from './result.js';

/**
 * The progress line on stderr: what runs now and what is left. On a terminal it rewrites one line;
 * elsewhere (CI logs) it prints one line per case.
 */
export class Progress {
  private done = 0;
  private readonly started = performance.now();
  private readonly tty: boolean;
  private lineOpen = false;

  constructor(
    private readonly total: number,
    private readonly enabled: boolean,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(stream.isTTY);
  }

  private elapsed(): string {
    const s = Math.round((performance.now() - this.started) / 1000);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  }

  private write(line: string): void {
    if (!this.enabled) return;
    if (this.tty) {
      const width = this.stream.columns || 120;
      this.stream.write(`\r\x1b[2K${line.slice(0, width - 1)}`);
      this.lineOpen = true;
    } else {
      this.stream.write(`${line}\n`);
    }
  }

  start(target: string, caseKey: string): void {
    const left = this.total - this.done;
    this.write(`[${this.done + 1}/${this.total}] ${target}  ${caseKey}  (${left - 1} left after this, ${this.elapsed()} elapsed)`);
  }

  result(r: CaseResult): void {
    this.done++;
    if (!this.tty && this.enabled && r.status !== 'ok')
      this.stream.write(`    ${r.target} ${r.caseKey}: ${r.status}${r.reason ? ` (${r.reason})` : ''}\n`);
  }

  /** Lets other output (a child's stderr) start on a clean line. */
  interrupt(): void {
    if (this.lineOpen && this.tty && this.enabled) {
      this.stream.write('\r\x1b[2K');
      this.lineOpen = false;
    }
  }

  finish(): void {
    if (!this.enabled) return;
    if (this.tty) this.stream.write(`\r\x1b[2K`);
    this.stream.write(`${this.done}/${this.total} done in ${this.elapsed()}\n`);
  }
}
