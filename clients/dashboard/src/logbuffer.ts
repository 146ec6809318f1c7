import type { LogLevel, LogStream } from "@devenv/api";

// The page's bounded store of log lines: a ring of at most `capacity` entries, each
// numbered by a sequence number that never repeats, so the view can keep its place
// while old lines fall off the front. What fell off is counted, not forgotten: the
// view says so, and a server-side search still finds it.

export const enum EntryKind {
  Line = 0,
  /** The server dropped lines for this page (LogEntry.missed). */
  Skipped = 1,
  /** A note from the page itself (reconnected, stream ended with an error). */
  Note = 2,
}

export interface Entry {
  kind: EntryKind;
  /** Milliseconds since the epoch. */
  time: number;
  service: string;
  stream: LogStream;
  /** Read by the daemon from the line; UNSPECIFIED when it states none. */
  level: LogLevel;
  text: string;
  /** For Skipped: how many lines. */
  count: number;
}

export class LogBuffer {
  private ring: (Entry | undefined)[];
  private start = 0;
  private size = 0;
  /** Sequence number of the entry at the front. */
  private firstSeq = 0;
  /** Entries evicted since the last clear. */
  evicted = 0;

  constructor(readonly capacity: number) {
    if (capacity < 1) throw new RangeError("capacity must be at least 1");
    this.ring = new Array<Entry | undefined>(capacity);
  }

  get length(): number {
    return this.size;
  }

  /** Sequence number of the oldest entry kept. */
  get first(): number {
    return this.firstSeq;
  }

  /** Sequence number the next entry gets. */
  get end(): number {
    return this.firstSeq + this.size;
  }

  push(e: Entry): void {
    if (this.size < this.capacity) {
      this.ring[(this.start + this.size) % this.capacity] = e;
      this.size++;
      return;
    }
    this.ring[this.start] = e;
    this.start = (this.start + 1) % this.capacity;
    this.firstSeq++;
    this.evicted++;
  }

  /** The entry with sequence number `seq`, if still kept. */
  at(seq: number): Entry | undefined {
    const i = seq - this.firstSeq;
    if (i < 0 || i >= this.size) return undefined;
    return this.ring[(this.start + i) % this.capacity];
  }

  clear(): void {
    this.ring = new Array<Entry | undefined>(this.capacity);
    this.firstSeq += this.size;
    this.start = 0;
    this.size = 0;
    this.evicted = 0;
  }

  *entries(): Generator<Entry> {
    for (let s = this.firstSeq; s < this.end; s++) {
      const e = this.at(s);
      if (e) yield e;
    }
  }
}
