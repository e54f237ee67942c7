package io.doppel.replication;

import io.doppel.storage.DirtyMap;
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

    private final Volume volume;
    private final DirtyMap dirtyMap;
    private final ByteBufAllocator alloc;
    private final long capacityBytes;
    private final VolumeState state;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition notEmpty = lock.newCondition();

    private final long[] offsets = new long[MAX_RECORDS];
    private final ByteBuf[] records = new ByteBuf[MAX_RECORDS];
    private int head;
    private int count;
    private long queuedBytes;
    private long inHandBytes;
    private boolean logging;
    private long writes;

    public ReplicationLog(final Volume volume, final DirtyMap dirtyMap, final ByteBufAllocator alloc,
        final long capacityBytes, final VolumeState state)
    {
        this.volume = volume;
        this.dirtyMap = dirtyMap;
        this.alloc = alloc;
        this.capacityBytes = capacityBytes;
        this.state = state;
    }

    /** Writes {@code src} at {@code offset}, marks it dirty, and logs it when streaming. */
    public void write(final long offset, final ByteBuffer src)
    {
        final int length = src.remaining();
        lock.lock();
        try
        {
            final ByteBuffer copy = logging ? src.duplicate() : null;
            volume.write(offset, src);
            dirtyMap.markBytes(offset, length);
            writes++;
            if (logging)
            {
                if (count == MAX_RECORDS || queuedBytes + length > capacityBytes)
                {
                    // Overflow: stop logging; the dirty map then holds every unsent block.
                    logging = false;
                    releaseAll();
                    state.logOverflows.incrementAndGet();
                    notEmpty.signalAll();
                }
                else
                {
                    final ByteBuf record = alloc.directBuffer(length, length);
                    record.writeBytes(copy);
                    final int tail = (head + count) & (MAX_RECORDS - 1);
                    offsets[tail] = offset;
                    records[tail] = record;
                    count++;
                    queuedBytes += length;
                    notEmpty.signal();
                }
            }
        }
        finally
        {
            lock.unlock();
        }
    }

    /**
     * Takes the oldest record, clearing the dirty bits of the blocks it covers. Waits up to
     * {@code waitNanos} for one. Returns null when the log is empty or not logging; the caller owns
     * (and releases) the returned buffer, whose offset is in {@code offsetOut[0]}.
     */
    public ByteBuf take(final long waitNanos, final long[] offsetOut) throws InterruptedException
    {
        lock.lock();
        try
        {
            long remaining = waitNanos;
            while (logging && count == 0 && remaining > 0)
            {
                remaining = notEmpty.awaitNanos(remaining);
            }
            if (!logging || count == 0)
            {
                return null;
            }
            final ByteBuf record = records[head];
            final long offset = offsets[head];
            records[head] = null;
            head = (head + 1) & (MAX_RECORDS - 1);
            count--;
            queuedBytes -= record.readableBytes();
            inHandBytes = record.readableBytes();
            dirtyMap.clearBytes(offset, record.readableBytes());
            offsetOut[0] = offset;
            return record;
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

    /** Starts logging if, and only if, nothing is dirty: the switch from catch-up to streaming. */
    public boolean startLogging()
    {
        lock.lock();
        try
        {
            if (dirtyMap.dirtyBlocks() != 0)
            {
                return false;
            }
            logging = true;
            return true;
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

    /** Writes taken so far, for callers that wait for quiet. */
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
            dirtyMap.markBytes(offsets[head], records[head].readableBytes());
            records[head].release();
            records[head] = null;
            head = (head + 1) & (MAX_RECORDS - 1);
            count--;
        }
        queuedBytes = 0;
    }
}
