/**
 * Progress for long CLI commands: a bar redrawn in place on a terminal,
 * plain lines (at most one a second, and the last) when output is a file or pipe.
 */
export class Progress {
  private readonly started = Date.now();
  private lastLine = 0;
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private readonly unit: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(out.isTTY);
  }

  update(done: number, total: number): void {
    const secs = ((Date.now() - this.started) / 1000).toFixed(1);
    const pct = total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 0;
    if (this.tty) {
      const width = 30;
      const filled = Math.round((pct / 100) * width);
      this.out.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(pct).padStart(3)}% ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} ${this.unit} ${secs}s`);
      return;
    }
    const now = Date.now();
    if (now - this.lastLine < 1000 && done < total) return;
    this.lastLine = now;
    this.out.write(`${this.label}: ${done}/${total} ${this.unit} (${pct}%) ${secs}s\n`);
  }

  done(message: string): void {
    this.out.write(`${this.tty ? '\n' : ''}${message}\n`);
  }
}
