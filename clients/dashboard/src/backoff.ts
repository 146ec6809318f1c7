// Reconnection delays for the streams: quick at first (a daemon restart takes about
// a second), capped so a page left open on a stopped daemon retries every 10 s, with
// jitter so several pages do not knock together. wake() retries at once: the page
// calls it when the browser says it is online or visible again (after sleep).

export class Backoff {
  private attempt = 0;
  private wakers = new Set<() => void>();

  constructor(
    private readonly firstMs = 250,
    private readonly maxMs = 10_000,
  ) {}

  reset(): void {
    this.attempt = 0;
  }

  /** The next delay: first, 2x, 4x, ... up to max, each -20%..+0% jitter. */
  next(): number {
    const base = Math.min(this.maxMs, this.firstMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return Math.round(base * (0.8 + Math.random() * 0.2));
  }

  /** Waits the next delay, or less when woken or aborted. */
  wait(signal: AbortSignal): Promise<void> {
    const ms = this.next();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
      signal.addEventListener("abort", done);
    });
  }

  /** Ends every wait now (the network came back, the tab became visible). */
  wake(): void {
    this.attempt = 0;
    for (const w of [...this.wakers]) w();
  }
}
