// The one retry schedule for everything the page tries again: joining the call again after the
// socket drops, offering the server's media again, offering a direct video link again. Each has
// its own Backoff with its own numbers. Doubling waits keep a struggling server from being
// hammered; jitter spreads apart the pages that lost the same server at the same moment.

export class Backoff {
  /**
   * baseMs: the first wait, doubled after each try, at most maxMs; jitter: a random ±fraction of
   * each wait; immediateFirst: the first try goes at once; maxAttempts: tries before giving up.
   */
  constructor({
    baseMs,
    maxMs = Infinity,
    jitter = 0,
    immediateFirst = false,
    maxAttempts = Infinity,
  }) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
    this.jitter = jitter;
    this.immediateFirst = immediateFirst;
    this.maxAttempts = maxAttempts;
    this.attempt = 0;
    this.timer = null;
  }

  /** The wait before try number `attempt` (from 0), without jitter. */
  delay(attempt) {
    if (this.immediateFirst && attempt === 0) return 0;
    return Math.min(this.maxMs, this.baseMs * 2 ** attempt);
  }

  /** Run `task` after the next wait (replacing one still waiting); false once tries are spent. */
  schedule(task) {
    if (this.attempt >= this.maxAttempts) return false;
    clearTimeout(this.timer);
    const spread = this.jitter ? 1 - this.jitter + Math.random() * 2 * this.jitter : 1;
    const wait = this.delay(this.attempt) * spread;
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = null;
      task();
    }, wait);
    return true;
  }

  /** Drop the try still waiting, if any; the count of tries stays. */
  cancel() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  /** Start over: nothing waiting and the next try is the first. */
  reset() {
    this.cancel();
    this.attempt = 0;
  }
}
