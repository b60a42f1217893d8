/**
 * A table's changelog as a sequence of segment files, each one ChangelogFile
 * (log.ts: frames, checksums and torn-tail rules unchanged). Appends go to the
 * last segment; once it holds `segmentBytes` or more, the next append starts a
 * new one. Sealed segments are only read, and deleted once the cold tier holds
 * their records (see tier.ts for when).
 *
 * Positions are global: the changelog is one byte stream cut into segments, a
 * segment named by the global position of its first byte
 * (`changelog-<20-digit position>.log`). Frame metadata, the frame index and
 * snapshots keep global positions, so they do not change when segments roll or
 * are deleted. A data folder from before segments (`changelog.log`) becomes
 * the segment at position 0 by a rename.
 *
 * Only the last segment may have a torn tail: damage in a sealed one (written
 * whole and fdatasync'd before the next began) refuses to open.
 */
import { open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDir } from '../util/fs.js';
import { ChangelogFile, FILE_START, FRAME_MAGIC, HEADER_BYTES, type FrameMeta, type RawFrame, type NewFrame, type RecoveryReport, type ResumePoint } from './log.js';

const LEGACY_NAME = 'changelog.log';
const NAME = /^changelog-(\d{20})\.log$/;
const segmentName = (base: number): string => `changelog-${String(base).padStart(20, '0')}.log`;

interface Segment {
  /** Global position of the segment's first byte. */
  base: number;
  file: ChangelogFile;
  /** Unlinked, its handle kept open until no scan is pinned (see pin). */
  deleted: boolean;
}

export interface SegmentInfo {
  base: number;
  /** Global position just past its last byte. */
  end: number;
  sealed: boolean;
}

export class SegmentedLog {
  private segs: Segment[] = [];
  private pins = 0;

  private constructor(
    private readonly dir: string,
    private readonly segmentBytes: number,
    /** The table's name: part of every chain hash (log.ts). */
    private readonly table: string,
  ) {}

  /**
   * Opens the table's segments and replays from `from` (a global position):
   * `onFrame` gets every whole frame after it, positions global. When the
   * segments at `from` were deleted (the cold tier holds their records; only
   * a replay from 0 without a snapshot meets this), `onGap` is called first
   * with the first offset the hot log holds (undefined when it holds none):
   * the caller replays the cold tier below it and says where the hot log must
   * go on (the next offset and the last commit time).
   */
  static async open(
    dir: string,
    from: ResumePoint,
    segmentBytes: number,
    onFrame: (meta: FrameMeta, payload: Uint8Array) => void,
    onGap: (hotFirstOffset: number | undefined) => Promise<{ offset: number; commitTime: number; head: Buffer }>,
    table: string,
  ): Promise<{ log: SegmentedLog; report: RecoveryReport }> {
    const log = new SegmentedLog(dir, segmentBytes, table);
    const names = await readdir(dir);
    if (names.includes(LEGACY_NAME) && !names.some((n) => NAME.test(n))) {
      await rename(join(dir, LEGACY_NAME), join(dir, segmentName(0)));
      await syncDir(dir);
      names.push(segmentName(0));
    }
    const bases = names
      .map((n) => NAME.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    // No segment yet (a new table): ChangelogFile.open creates the first.
    const creating = bases.length === 0;
    if (creating) bases.push(0);
    const report: RecoveryReport = { frames: 0, records: 0, cutBytes: 0 };
    // The chain continues across segments: each one starts from the previous one's head.
    let expect: { offset: number; commitTime: number; head?: Buffer } = { offset: from.offset, commitTime: from.commitTime };
    if (from.pos < bases[0]) expect = await onGap(await firstOffsetOf(join(dir, segmentName(bases[0]))));
    const lf = from.lastFrame;
    try {
      for (let i = 0; i < bases.length; i++) {
        const base = bases[i];
        const end = i + 1 < bases.length ? bases[i + 1] : Infinity;
        const path = join(dir, segmentName(base));
        const local = lf && lf.pos >= base && lf.pos < end ? { ...lf, pos: lf.pos - base } : undefined;
        // Every frame of a segment is walked from its start (log.ts): its offsets begin where its first header says.
        const fileOffset = (await firstOffsetOf(path)) ?? expect.offset;
        let at: ResumePoint;
        if (from.pos >= end) {
          // Wholly before the resume point: its frames are in the snapshot's index. Opened for reading
          // (at its end, so nothing is replayed); the snapshot's last frame, if here, is checked.
          at = local ? { pos: from.pos - base, offset: from.offset, commitTime: from.commitTime, lastFrame: local } : { pos: (await stat(path)).size, offset: 0, commitTime: -Infinity };
        } else if (from.pos >= base) {
          at = { pos: from.pos - base, offset: from.offset, commitTime: from.commitTime, lastFrame: local, head: expect.head };
        } else {
          at = { pos: 0, offset: expect.offset, commitTime: expect.commitTime, head: expect.head };
        }
        const { log: file, report: r } = await ChangelogFile.open(
          path,
          { ...at, fileOffset },
          (meta, payload) => {
            expect = { offset: meta.firstOffset + meta.count, commitTime: meta.commitTime };
            onFrame({ ...meta, pos: meta.pos + base }, payload);
          },
          table,
          { sealed: i < bases.length - 1 },
        );
        log.segs.push({ base, file, deleted: false });
        expect.head = file.chainHead;
        report.frames += r.frames;
        report.records += r.records;
        report.cutBytes += r.cutBytes;
        report.cutReason ??= r.cutReason;
      }
      // The new file's name must be durable before any frame in it is acknowledged (as when rolling: append).
      if (creating) await syncDir(dir);
    } catch (e) {
      await log.close();
      throw e;
    }
    return { log, report };
  }

  private get last(): Segment {
    return this.segs[this.segs.length - 1];
  }

  /** Global position just past the last frame. */
  get bytes(): number {
    return this.last.base + this.last.file.bytes;
  }

  /** The live segments, oldest first (the last one is being written). */
  segments(): SegmentInfo[] {
    const live = this.segs.filter((s) => !s.deleted);
    return live.map((s, i) => ({ base: s.base, end: s.base + s.file.bytes, sealed: i < live.length - 1 }));
  }

  /** Writes frames at the end (rolling to a new segment first when the last is full) and waits for fdatasync. */
  async append(frames: NewFrame[]): Promise<FrameMeta[]> {
    const nextOffset = frames[0]?.firstOffset ?? 0;
    if (this.last.file.bytes >= this.segmentBytes) {
      const base = this.bytes;
      const { log: file } = await ChangelogFile.open(join(this.dir, segmentName(base)), { ...FILE_START, head: this.last.file.chainHead, fileOffset: nextOffset }, () => undefined, this.table);
      // The new file's name must be durable before any frame in it is acknowledged.
      await syncDir(this.dir);
      this.segs.push({ base, file, deleted: false });
    }
    const seg = this.last;
    const metas = await seg.file.append(frames);
    for (const m of metas) m.pos += seg.base;
    return metas;
  }

  /** A frame's payload (global position), its checksum checked again. */
  readPayload(meta: FrameMeta): Promise<Uint8Array> {
    const seg = this.holder(meta.pos);
    return seg.file.readPayload({ ...meta, pos: meta.pos - seg.base });
  }

  /** The last segment (the one written) must be cut back to its last durable frame before more writes (log.ts). */
  get needsRestore(): boolean {
    return this.segs.length > 0 && this.last.file.needsRestore;
  }

  /** Cuts the last segment back to its last durable frame (log.ts). */
  restore(): Promise<void> {
    return this.segs.length > 0 ? this.last.file.restore() : Promise.resolve();
  }

  /** The newest frame's chain hash (log.ts). */
  get chainHead(): Buffer {
    return this.last.file.chainHead;
  }

  private holder(pos: number): Segment {
    let seg: Segment | undefined;
    for (const s of this.segs) if (s.base <= pos) seg = s;
    if (!seg) throw new Error(`no changelog segment holds byte ${pos} of ${this.dir}`);
    return seg;
  }

  /** A whole frame (global position) as stored, checksum checked: what the cold tier keeps. */
  readBytes(meta: FrameMeta): Promise<Buffer> {
    const seg = this.holder(meta.pos);
    return seg.file.readBytes({ ...meta, pos: meta.pos - seg.base });
  }

  /**
   * Whole frames (global positions, ascending) as stored, checksums checked
   * (unless `check` is false: the audit's walk reports them):
   * one read per segment they lie in, spanning the bytes between them too
   * (the caller bounds the span: union-read.ts). With `into`, a run within
   * one segment is read into it when it fits (the frames are views into it).
   */
  async readRun(metas: FrameMeta[], check = true, into?: Buffer): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for (let i = 0; i < metas.length; ) {
      const seg = this.holder(metas[i].pos);
      const end = seg.base + seg.file.bytes;
      const j = i;
      while (i < metas.length && metas[i].pos < end) i++;
      // `into` (a buffer the caller reuses) holds a run within one segment; a run across segments reads into new ones.
      const whole = j === 0 && i === metas.length;
      for (const b of await seg.file.readRun(whole ? metas : metas.slice(j, i), seg.base, check, whole ? into : undefined)) out.push(b);
    }
    return out;
  }

  /** A frame as stored (global position), checksum reported, not enforced: the audit's chain walk. */
  async readFrame(meta: FrameMeta): Promise<RawFrame> {
    const seg = this.holder(meta.pos);
    return { ...(await seg.file.readFrame({ ...meta, pos: meta.pos - seg.base })), pos: meta.pos };
  }

  /**
   * Keeps deleted segments readable until `unpin`: a scan that chose to read
   * a frame from the hot log can still read it after tiering deleted its segment.
   */
  pin(): void {
    this.pins++;
  }
  unpin(): void {
    if (--this.pins === 0) void this.closeDeleted();
  }

  /** Deletes the sealed segments that end at or before global position `end`. Returns how many. */
  async deleteBefore(end: number): Promise<number> {
    let n = 0;
    const live = this.segs.filter((s) => !s.deleted);
    for (let i = 0; i < live.length - 1; i++) {
      const s = live[i];
      if (s.base + s.file.bytes > end) break;
      await unlink(join(this.dir, segmentName(s.base)));
      s.deleted = true;
      n++;
    }
    if (n > 0) {
      await syncDir(this.dir);
      if (this.pins === 0) await this.closeDeleted();
    }
    return n;
  }

  private async closeDeleted(): Promise<void> {
    const gone = this.segs.filter((s) => s.deleted);
    this.segs = this.segs.filter((s) => !s.deleted);
    await Promise.all(gone.map((s) => s.file.close()));
  }

  async close(): Promise<void> {
    await Promise.all(this.segs.map((s) => s.file.close()));
    this.segs = [];
  }
}

/** The first frame's offset, read from its header; undefined for an empty segment. */
async function firstOffsetOf(path: string): Promise<number | undefined> {
  const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined; // a new table's first segment: created by ChangelogFile.open
    throw e;
  });
  if (!fh) return undefined;
  try {
    const h = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await fh.read(h, 0, HEADER_BYTES, 0);
    return bytesRead === HEADER_BYTES && h.readUInt32LE(0) === FRAME_MAGIC ? Number(h.readBigInt64LE(16)) : undefined;
  } finally {
    await fh.close();
  }
}

