/**
 * Following a table's changelog for one client: the records from an offset,
 * then live ones, each exactly once and in offset order. The rule of both
 * follow routes (REST server-sent events, gRPC `ChangelogService/Follow`);
 * the adapters only encode records and say when their client can take more.
 *
 * Memory per follower is bounded, however slowly its client reads: nothing is
 * queued for it. The follower keeps one number, `next` (every record below it
 * was sent or is not the follower's key), and a pump that reads the
 * changelog from `next` (the catch-up scan, from disk) while the client takes
 * records, waiting for it whenever its buffer is full. Once the pump reaches
 * the table's end it goes live: each commit is sent as it arrives, straight
 * from the commit, until the client's buffer is full; from there (or when a
 * commit arrives while the pump is still reading) the commit is left where it
 * is, in the changelog, and the pump reads it back once the client drains.
 * A commit is never held up by a follower, and a follower never holds a
 * commit's records. Nor does a paused one hold its read: a read stays open
 * while the client drains within KEEP_READ_MS (re-reading a large frame after
 * every drain would cost a steady reader dearly), and is let go after.
 *
 * No gap, no duplicate: the subscription starts before the first read; a
 * record below `next` is never sent again; the pump goes live only in the
 * same synchronous step in which it finds nothing left to read (the table's
 * end is `next`), so the next commit the subscription sees starts at `next`
 * (one that does not, or one seen while the pump runs, is read back from the
 * changelog instead).
 */
import type { ChangeRecord, Commit, Table } from './table.js';
import { CHANGE_NAMES } from './arrow-codec.js';

/** How long a read stays open for a client whose buffer is full, ms, before it is let go (`pump`). */
const KEEP_READ_MS = 1000;

/** Where a follower's records go: one client's stream. */
export interface FollowSink {
  /** Writes one record to the client; false once the client's buffer is full (the follower then waits for `drained`). */
  send(r: ChangeRecord): boolean;
  /** Resolves once the client's buffer has drained. The follower also stops waiting when stopped. */
  drained(): Promise<void>;
  /** Reading the changelog failed: the follow has stopped; end the client's stream with `err`. */
  fail(err: unknown): void;
}

export interface FollowOptions {
  /** First offset to send. */
  from: number;
  /** Only this key's records (a canonical key, `schema.parseKey`). */
  key?: string;
}

/**
 * Starts following `t` for one client. Returns `stop`, to call when the
 * client is gone (idempotent): it unsubscribes, ends a wait for the client at
 * once and a read under way at its next record, and nothing more is sent.
 */
export function followChangelog(t: Table, opts: FollowOptions, sink: FollowSink): () => void {
  const key = opts.key;
  /** Every record below this was sent (or is not of `key`). */
  let next = opts.from;
  /** Caught up, and the client's buffer is not full: commits are sent as they arrive. */
  let live = false;
  /** The pump is running (reading the changelog, or waiting for the client). */
  let pumping = false;
  /** The client's buffer is full: wait for it before sending more. */
  let full = false;
  let stopped = false;
  /** Ends a wait for the client (set while waiting). */
  let wake: (() => void) | undefined;
  /** Settles once the client's buffer drained (set while it is full). */
  let drained: Promise<void> | undefined;

  const matches = (r: ChangeRecord['row']): boolean => key === undefined || t.schema.keyOf(r) === key;

  /** Sends a record not sent yet; false once the client's buffer is full. */
  const send = (r: ChangeRecord): boolean => {
    const more = sink.send(r);
    next = r.offset + 1;
    if (!more) full = true;
    return more;
  };

  /** Waits until the client's buffer drains (or the follow stops), or at most `ms`; true unless the buffer is still full. */
  const waitForClient = async (ms?: number): Promise<boolean> => {
    if (!full || stopped) return true;
    if (drained === undefined) {
      drained = sink.drained().then(
        () => void (full = false),
        () => void (full = false),
      );
    }
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      wake = resolve;
      void drained!.then(resolve);
      if (ms !== undefined) timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    wake = undefined;
    if (full && !stopped) return false;
    drained = undefined;
    return true;
  };

  /** Reads the changelog from `next` to the table's end, for as long as the end moves; then goes live. */
  const pump = async (): Promise<void> => {
    for (;;) {
      await waitForClient();
      if (stopped) return;
      const end = t.endOffset;
      if (next >= end) {
        // Nothing left to read, decided in the same step as going live: the next commit starts at `next`.
        pumping = false;
        live = true;
        return;
      }
      let released = false;
      for await (const r of t.scan({ fromOffset: next, toOffset: end, key })) {
        if (stopped) return;
        if (r.offset < next) continue;
        // A client that takes its records soon keeps the read open. One that does not (paused, gone quiet) lets it
        // go: a read holds the frame it is in (a large commit decoded, megabytes), which a thousand paused followers
        // would each pin. The read starts again from `next` once the client drains (the loop's first wait).
        if (!send(r) && !(await waitForClient(KEEP_READ_MS))) {
          released = true;
          break;
        }
        if (stopped) return;
      }
      // Every record of the key below `end` was sent.
      if (!released && next < end) next = end;
    }
  };

  const startPump = (): void => {
    live = false;
    if (pumping || stopped) return;
    pumping = true;
    pump().catch(failed);
  };

  /** A read (or encoding a record) failed: the follow ends, and the client is told. */
  const failed = (e: unknown): void => {
    if (stopped) return;
    stop();
    sink.fail(e);
  };

  const onCommit = (c: Commit): void => {
    try {
      sendLive(c);
    } catch (e) {
      failed(e);
    }
  };

  /** A commit, sent as it arrives when the follower is live; otherwise left to the pump. */
  const sendLive = (c: Commit): void => {
    if (stopped) return;
    const end = c.firstOffset + c.rows.length;
    if (end <= next) return;
    // Behind (reading, or waiting for the client), or a commit that does not start at `next`: the pump reads it back.
    if (!live || c.firstOffset > next) return startPump();
    for (let i = next - c.firstOffset; i < c.rows.length; i++) {
      const row = c.rows[i];
      if (!matches(row)) continue;
      // The client's buffer is full: the rest of the commit stays in the changelog, read back from `next` once it drains.
      if (!send({ offset: c.firstOffset + i, changeType: CHANGE_NAMES[c.changes[i]], commitTime: c.commitTime, row })) return startPump();
    }
    next = end;
  };

  const unsubscribe = t.subscribe(onCommit);
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    live = false;
    unsubscribe();
    wake?.();
  };
  startPump();
  return stop;
}
