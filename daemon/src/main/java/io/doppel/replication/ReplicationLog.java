package io.doppel.replication;

import io.doppel.storage.ActivityLog;
import io.doppel.storage.DirtyMap;
import io.doppel.storage.MetadataFile;
import io.doppel.storage.Volume;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.nio.ByteBuffer;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The primary's write path and its ordered, bounded replication log.
 *
 * <p>Every write goes into the mapped volume and marks the dirty map. While the link streams
 * ({@link #isLogging()}), the write's bytes are also copied into the log, in write order, so the
 * standby replays the primary's history as a prefix (crash-consistent). The log is bounded in bytes;
 * when it would overflow, logging stops and the dirty map alone records what must be sent (catch-up,
 * during which the standby is inconsistent). Logging resumes only when the dirty map is empty.
 *
 * <p>Invariant while logging: every dirty block is covered by a record still in the log. That is why
 * the sender may clear a record's blocks when it takes the record, and why the write, the mark and
 * the append happen under one lock with {@link #take} and {@link #startLogging}. Contention is a
 * memcpy per write; writers never wait for the network.
 */
public final class ReplicationLog
{
    private static final int MAX_RECORDS = 1 << 16;
    /**
     * A zero record (TRIM, WRITE_ZEROES) covering more blocks than this is not logged: the volume drops
     * to catch-up instead, so the per-block record counts stay small.
     */
    static final long MAX_ZERO_RECORD_BLOCKS = 1 << 16;
    /** Most blocks all queued records may cover together (zero records cost no bytes, so bytes do not bound it). */
    static final long MAX_QUEUED_BLOCKS = 1 << 20;

    private final Volume volume;
    private final MetadataFile metadata;
    private final DirtyMap dirtyMap;
    private final ActivityLog activityLog;
    private final ActivityLog.Eviction eviction = new ActivityLog.Eviction()
    {
        @Override
        public void forget(final long extent)
        {
            forgetExtent();
        }

        @Override
        public void forgetUnverified(final long extent)
        {
            // A record-less dirty bit would break the log's invariant: leave streaming first.
            overflow();
            final long start = extent * activityLog.extentBytes();
            final long end = Math.min(volume.size(), start + activityLog.extentBytes());
            if (start < end)
            {
                dirtyMap.markBytes(start, end - start);
            }
            forgetExtent();
        }
    };
    private final ByteBufAllocator alloc;
    private final long capacityBytes;
    private final VolumeState state;
    private final AckTracker acks;
    private final ReentrantLock lock = new ReentrantLock();
    private final BlockCounts queuedBlocks = new BlockCounts(1 << 14);
    /** Blocks counted for queued records; past {@link #MAX_QUEUED_BLOCKS} the log overflows instead. */
    private long queuedBlockSpan;
    /** Set by a demote: no write may change the image any more. */
    private boolean fenced;
    private final Condition notEmpty = lock.newCondition();

    private final long[] offsets = new long[MAX_RECORDS];
    private final long[] lengths = new long[MAX_RECORDS];
    private final long[] lsns = new long[MAX_RECORDS];
    /** The bytes of each record; null for a zero record (a write of zeros, a trim). */
    private final ByteBuf[] records = new ByteBuf[MAX_RECORDS];
    private int head;
    private int count;
    private long queuedBytes;
    private long inHandBytes;
    private boolean logging;
    private long writes;
    private long lastLoggedLsn;
    private boolean woken;
    /** Every write up to this lsn is on the primary's own disk (see {@link #forcedUpTo}). */
    private final java.util.concurrent.atomic.AtomicLong forcedLsn = new java.util.concurrent.atomic.AtomicLong();
    /** The generation current when logging last started: what SYNC_DONE tells the standby to adopt. */
    private long loggingGen;

    public ReplicationLog(final Volume volume, final MetadataFile metadata, final ByteBufAllocator alloc,
        final long capacityBytes, final VolumeState state, final AckTracker acks)
    {
        this.acks = acks;
        acks.onFlushWanted(this::wake);
        this.volume = volume;
        this.metadata = metadata;
        this.dirtyMap = metadata.dirtyMap();
        this.activityLog = metadata.activityLog();
        this.alloc = alloc;
        this.capacityBytes = capacityBytes;
        this.state = state;
    }

    /**
     * Writes {@code src} at {@code offset}, marks it dirty, and logs it when streaming. Returns the write's
     * log sequence number, or 0 when it was not logged (no peer streaming: only the dirty map has it).
     */
    public long write(final long offset, final ByteBuffer src)
    {
        final int length = src.remaining();
        // Out of range touches nothing: no byte written, no bit marked (a bit past the end would
        // never be cleared and would hold catch-up forever).
        volume.checkRange(offset, length);
        lock.lock();
        try
        {
            checkNotFenced();
            final ByteBuf record = logging ? alloc.directBuffer(length, length) : null;
            if (record != null)
            {
                final int position = src.position(); // no duplicate per write: put the position back instead
                record.writeBytes(src);
                src.position(position);
            }
            beforeWrite(offset, length);
            boolean written = false;
            try
            {
                volume.write(offset, src);
                written = true;
            }
            finally
            {
                // Marked even when the write failed part way: whatever reached the image must be sent.
                dirtyMap.markBytes(offset, length);
                writes++;
                if (!written)
                {
                    // The bytes on disk are unknown now, so no record may claim them: the log's
                    // invariant would break. Fall back to catch-up from the dirty map.
                    if (record != null)
                    {
                        record.release();
                    }
                    overflow();
                }
            }
            if (record != null && admit(length, offset, length, false))
            {
                append(offset, length, record);
                return writes;
            }
            if (record != null)
            {
                record.release();
            }
            return 0;
        }
        finally
        {
            lock.unlock();
        }
    }

    /**
     * Zeroes {@code [offset, offset+length)} (deallocating it when {@code punch} and the file allows),
     * marks it dirty and logs it as a zero record, which costs no memory and crosses the wire as ZERO frames.
     */
    public long writeZeroes(final long offset, final long length, final boolean punch)
    {
        if (length <= 0)
        {
            return 0;
        }
        volume.checkRange(offset, length);
        lock.lock();
        try
        {
            checkNotFenced();
            beforeWrite(offset, length);
            boolean written = false;
            try
            {
                if (punch)
                {
                    volume.zeroRange(offset, length);
                }
                else
                {
                    volume.writeZeros(offset, length);
                }
                written = true;
            }
            finally
            {
                dirtyMap.markBytes(offset, length);
                writes++;
                if (!written)
                {
                    overflow();
                }
            }
            if (admit(0, offset, length, true))
            {
                append(offset, length, null);
                return writes;
            }
            return 0;
        }
        finally
        {
            lock.unlock();
        }
    }

    /**
     * Blocks {@code [from, to)} of a watched file changed behind doppel's back (another program wrote them):
     * they are marked dirty, and a streaming volume drops to catch-up, so the sender ships them from the
     * dirty map and the standby is inconsistent until the catch-up ends. Nothing is logged: the bytes are
     * read at sending time.
     */
    public void markChanged(final long from, final long to)
    {
        lock.lock();
        try
        {
            if (!logging)
            {
                metadata.startTracking();
            }
            dirtyMap.markBlocks(from, to);
            if (logging)
            {
                logging = false;
                releaseAll();
                state.replication(VolumeState.Replication.BEHIND);
                state.disk(VolumeState.Disk.SYNCING);
                notEmpty.signalAll();
                acks.release(writes);
            }
        }
        finally
        {
            lock.unlock();
        }
    }

    /**
     * A watched file may have changed (an event came, not yet scanned): a standby reported up to date is
     * outdated from now on — still consistent, but behind. Under the lock the sender also takes to report
     * up to date, so the two cannot cross.
     */
    public void noteExternalChange()
    {
        lock.lock();
        try
        {
            if (state.disk() == VolumeState.Disk.UP_TO_DATE)
            {
                state.disk(VolumeState.Disk.OUTDATED);
            }
        }
        finally
        {
            lock.unlock();
        }
    }

    /**
     * What must be on disk before a write may change the image: its extents in the activity log (a
     * machine crash must not hide it), a new data generation when the standby is not following, and its
     * dirty bits (a killed process must not hide it; marked again after the write for the drainer).
     * Caller holds the lock.
     */
    private void beforeWrite(final long offset, final long length)
    {
        if (!logging)
        {
            metadata.startTracking();
        }
        // An extent cools only once the standby holds its writes and so does this node's disk.
        activityLog.beforeWrite(offset, length, writes + 1, Math.min(acks.receivedLsn(), forcedLsn.get()), eviction);
        dirtyMap.markBytes(offset, length);
    }

    /** Every write up to {@code lsn} has been forced to this node's disk. */
    void forcedUpTo(final long lsn)
    {
        forcedLsn.accumulateAndGet(lsn, Math::max);
    }

    /**
     * The activity log needs a slot and no extent is fully acknowledged: force the whole map first, so
     * the oldest extent's dirty and in-flight bits are on disk before the log stops listing it.
     * (Its own data is forced too: after a machine crash the map is all that will point at it.)
     */
    private void forgetExtent()
    {
        volume.flush();
        forcedUpTo(writes);
        metadata.flush();
    }

    /** The recovery resync after a crash covered the extents the activity log listed. */
    public void releaseRecoveredExtents()
    {
        lock.lock();
        try
        {
            activityLog.releaseRecovered();
        }
        finally
        {
            lock.unlock();
        }
    }

    /**
     * Whether a record of {@code bytes} covering {@code [offset, offset+length)} fits (records, bytes, counted
     * blocks); on overflow stops logging. Caller holds the lock.
     */
    private boolean admit(final long bytes, final long offset, final long length, final boolean zeroRecord)
    {
        if (!logging)
        {
            return false;
        }
        final long span = dirtyMap.endBlock(offset, length) - dirtyMap.firstBlock(offset);
        // A huge TRIM is not counted block by block: catch up from the dirty map instead.
        if (count == MAX_RECORDS || queuedBytes + bytes > capacityBytes || queuedBlockSpan + span > MAX_QUEUED_BLOCKS
            || zeroRecord && span > MAX_ZERO_RECORD_BLOCKS)
        {
            overflow();
            return false;
        }
        return true;
    }

    /**
     * Stops logging; the dirty map then holds every unsent block, and the standby is behind until
     * catch-up empties it. Caller holds the lock.
     */
    private void overflow()
    {
        if (!logging)
        {
            return;
        }
        logging = false;
        releaseAll();
        state.logOverflows.incrementAndGet();
        state.replication(VolumeState.Replication.BEHIND);
        state.disk(VolumeState.Disk.SYNCING);
        notEmpty.signalAll();
        acks.release(writes);
    }

    private void append(final long offset, final long length, final ByteBuf record)
    {
        final int tail = (head + count) & (MAX_RECORDS - 1);
        offsets[tail] = offset;
        lengths[tail] = length;
        lsns[tail] = writes;
        lastLoggedLsn = writes;
        records[tail] = record;
        queuedBlocks.increment(dirtyMap.firstBlock(offset), dirtyMap.endBlock(offset, length));
        queuedBlockSpan += dirtyMap.endBlock(offset, length) - dirtyMap.firstBlock(offset);
        count++;
        queuedBytes += record == null ? 0 : length;
        notEmpty.signal();
    }

    /**
     * Takes the oldest record, clearing the dirty bits of the blocks it covers. Waits up to
     * {@code waitNanos} for one. Returns false when the log is empty or not logging; otherwise the
     * record's offset, length and lsn are in {@code where[0..2]}, and its bytes in
     * {@code data[0]} (null for a zero record). The caller owns and releases the buffer.
     */
    public boolean take(final long waitNanos, final long[] where, final ByteBuf[] data) throws InterruptedException
    {
        lock.lock();
        try
        {
            long remaining = waitNanos;
            while (logging && count == 0 && remaining > 0 && !woken)
            {
                remaining = notEmpty.awaitNanos(remaining);
            }
            woken = false;
            if (!logging || count == 0)
            {
                return false;
            }
            final ByteBuf record = records[head];
            final long offset = offsets[head];
            final long length = lengths[head];
            records[head] = null;
            head = (head + 1) & (MAX_RECORDS - 1);
            count--;
            final long bytes = record == null ? 0 : length;
            queuedBytes -= bytes;
            inHandBytes = bytes;
            // A block also covered by a later queued record stays dirty: that record is not sent yet.
            final long end = dirtyMap.endBlock(offset, length);
            queuedBlockSpan -= end - dirtyMap.firstBlock(offset);
            for (long b = dirtyMap.firstBlock(offset); b < end; b++)
            {
                if (queuedBlocks.decrement(b) == 0)
                {
                    dirtyMap.claimBlocks(b, b + 1);
                }
                else
                {
                    dirtyMap.flyBlocks(b, b + 1);
                }
            }
            where[0] = offset;
            where[1] = length;
            where[2] = lsns[(head - 1) & (MAX_RECORDS - 1)];
            data[0] = record;
            return true;
        }
        finally
        {
            lock.unlock();
        }
    }

    /** Ends the sender's current wait in {@link #take} early (someone waits for a FLUSH to be sent). */
    public void wake()
    {
        lock.lock();
        try
        {
            woken = true;
            notEmpty.signalAll();
        }
        finally
        {
            lock.unlock();
        }
    }

    /** The sender has handed the record from the last {@link #take} to the link. */
    public void sent()
    {
        lock.lock();
        try
        {
            inHandBytes = 0;
        }
        finally
        {
            lock.unlock();
        }
    }

    /**
     * Starts logging if, and only if, nothing is dirty: the switch from catch-up to streaming. Returns
     * the lsn of the last write before logging began (the standby holds all of them once it has applied
     * what was claimed so far), or -1 when something is dirty.
     */
    public long startLogging()
    {
        lock.lock();
        try
        {
            if (dirtyMap.dirtyBlocks() != 0)
            {
                return -1;
            }
            logging = true;
            // Read under the lock: no unlogged write (which could start a new generation) comes between.
            loggingGen = metadata.currentGen();
            return writes;
        }
        finally
        {
            lock.unlock();
        }
    }

    /** Stops logging (link down); unsent records are dropped, their blocks stay dirty. */
    public void stopLogging()
    {
        lock.lock();
        try
        {
            logging = false;
            inHandBytes = 0;
            releaseAll();
            notEmpty.signalAll();
            acks.release(writes);
        }
        finally
        {
            lock.unlock();
        }
    }

    /** The generation that was current when logging last started (see {@link #startLogging}). */
    public long loggingGeneration()
    {
        lock.lock();
        try
        {
            return loggingGen;
        }
        finally
        {
            lock.unlock();
        }
    }

    /**
     * Refuses every later write (a demote): once this returns, no write is in progress and none will
     * change the image through this log.
     */
    public void fence()
    {
        lock.lock();
        try
        {
            fenced = true;
        }
        finally
        {
            lock.unlock();
        }
    }

    private void checkNotFenced()
    {
        if (fenced)
        {
            throw new IllegalStateException("volume is being demoted to standby: writes are refused");
        }
    }

    /** Runs {@code action} under the log's lock if, and only if, the log is still streaming. */
    public boolean ifLogging(final Runnable action)
    {
        lock.lock();
        try
        {
            if (logging)
            {
                action.run();
            }
            return logging;
        }
        finally
        {
            lock.unlock();
        }
    }

    public boolean isLogging()
    {
        lock.lock();
        try
        {
            return logging;
        }
        finally
        {
            lock.unlock();
        }
    }

    /** Bytes waiting in the log or taken but not yet handed to the link. */
    public long queuedBytes()
    {
        lock.lock();
        try
        {
            return queuedBytes + inHandBytes;
        }
        finally
        {
            lock.unlock();
        }
    }

    /** The lsn of the last write that went into the log (0 if none). */
    public long lastLoggedLsn()
    {
        lock.lock();
        try
        {
            return lastLoggedLsn;
        }
        finally
        {
            lock.unlock();
        }
    }

    /** The lsn of the last write taken (logged or not). */
    public long writes()
    {
        lock.lock();
        try
        {
            return writes;
        }
        finally
        {
            lock.unlock();
        }
    }

    /**
     * Drops every queued record and marks its blocks dirty again: a record taken earlier may have
     * cleared a block that a dropped record also covers.
     */
    private void releaseAll()
    {
        while (count > 0)
        {
            dirtyMap.markBytes(offsets[head], lengths[head]);
            if (records[head] != null)
            {
                records[head].release();
            }
            records[head] = null;
            head = (head + 1) & (MAX_RECORDS - 1);
            count--;
        }
        queuedBlocks.clear();
        queuedBlockSpan = 0;
        queuedBytes = 0;
    }
}
