package io.doppel.twoway;

import io.doppel.config.VolumeConfig;
import io.doppel.nbd.NbdExport;
import io.doppel.replication.VolumeState;
import io.doppel.storage.DirtyMap;
import io.doppel.storage.DiskWriteException;
import io.doppel.storage.MetadataFile;
import io.doppel.storage.Volume;
import io.doppel.storage.ZeroBlocks;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;

/**
 * A volume in two-way mode: both nodes take writes (NBD, the Java API) and stream them to each other.
 * Every block carries a version vector and a {@link HybridClock} stamp ({@link VersionVectorFile}); a local
 * write bumps this node's counter and marks the block dirty (owed to the peer); a block version from the
 * peer is {@linkplain BlockResolver resolved} against the local one before anything is written.
 *
 * <p>Why a lock per block stripe: the bytes of a block and its vector must change together. A sender that
 * read new bytes under an old vector, or a peer's version applied between a local write and its counter
 * bump, would lose a write without logging a conflict. Writers, the sender and the applier hold the
 * block's stripe while they touch bytes and vector; different blocks rarely share one.
 *
 * <p>A write is acknowledged once it is in the local image (FUA and FLUSH: on local stable storage); the
 * peer gets it as soon as the link carries it. There is no synchronous acknowledgement in two-way mode.
 */
public final class TwoWayVolume implements NbdExport, AutoCloseable
{
    private static final int STRIPES = 1024;

    private final VolumeConfig config;
    private final Volume volume;
    private final MetadataFile metadata;
    private final DirtyMap dirty;
    private final VersionVectorFile versions;
    private final ConflictLog conflicts;
    private final HybridClock clock;
    private final BlockResolver resolver;
    private final VolumeState state;
    private final TwoWayStatus status;
    private final int slot;
    private final int blockShift;
    private final java.util.concurrent.locks.ReentrantLock[] stripes =
        new java.util.concurrent.locks.ReentrantLock[STRIPES];
    /** The local bytes of a block a conflict may log (apply thread only, under {@link #applyLock}). */
    private final ByteBuffer localCopy;
    private final Object applyLock = new Object();
    private volatile Runnable wake = () -> { };

    public TwoWayVolume(final VolumeConfig config, final Volume volume, final MetadataFile metadata,
        final VersionVectorFile versions, final ConflictLog conflicts, final String nodeName, final VolumeState state)
    {
        this.config = config;
        this.volume = volume;
        this.metadata = metadata;
        this.dirty = metadata.dirtyMap();
        this.versions = versions;
        this.conflicts = conflicts;
        this.slot = versions.nodes().indexOf(nodeName);
        if (slot < 0)
        {
            throw new IllegalArgumentException(nodeName + " is not one of " + versions.nodes());
        }
        this.clock = new HybridClock(System::currentTimeMillis, slot, versions.highStamp());
        this.resolver = new BlockResolver(versions, conflicts, clock);
        this.state = state;
        this.status = new TwoWayStatus(nodeName, versions.nodes(), clock::high);
        this.blockShift = Integer.numberOfTrailingZeros(config.blockSize());
        this.localCopy = ByteBuffer.allocateDirect(config.blockSize());
        for (int i = 0; i < STRIPES; i++)
        {
            stripes[i] = new java.util.concurrent.locks.ReentrantLock();
        }
        state.sources(this::dirtyBytes, () -> 0, () -> 0);
        state.inFlightSource(() -> dirty.inFlightBlocks() * config.blockSize());
        state.twoWay(status);
    }

    @Override
    public String name()
    {
        return config.name();
    }

    public VolumeConfig config()
    {
        return state.config();
    }

    public VolumeState state()
    {
        return state;
    }

    public TwoWayStatus status()
    {
        return status;
    }

    public Volume volume()
    {
        return volume;
    }

    public MetadataFile metadata()
    {
        return metadata;
    }

    public VersionVectorFile versions()
    {
        return versions;
    }

    public ConflictLog conflictLog()
    {
        return conflicts;
    }

    public HybridClock clock()
    {
        return clock;
    }

    /** This node's slot in the vectors (its index among the sorted node names). */
    public int slot()
    {
        return slot;
    }

    /** Called after each local write: the link's sender sleeps until there is something to send. */
    public void onWrite(final Runnable value)
    {
        wake = value;
    }

    /** Takes the lock that guards block {@code block}'s bytes and vector together. */
    public void lock(final long block)
    {
        stripes[(int)(block & (STRIPES - 1))].lock();
    }

    public void unlock(final long block)
    {
        stripes[(int)(block & (STRIPES - 1))].unlock();
    }

    /**
     * Locks blocks {@code [from, to)} (at most {@link #STRIPES}) in ascending stripe order, the one order every
     * multi-block holder uses, so two writers never wait for each other in a cycle; single-block holders
     * (the sender, the applier) cannot close one.
     */
    public void lockBlocks(final long from, final long to)
    {
        final int n = (int)(to - from);
        final int first = (int)(from & (STRIPES - 1));
        if (first + n <= STRIPES)
        {
            for (int i = first; i < first + n; i++)
            {
                stripes[i].lock();
            }
            return;
        }
        for (int i = 0; i < first + n - STRIPES; i++)
        {
            stripes[i].lock();
        }
        for (int i = first; i < STRIPES; i++)
        {
            stripes[i].lock();
        }
    }

    public void unlockBlocks(final long from, final long to)
    {
        for (long b = from; b < to; b++)
        {
            stripes[(int)(b & (STRIPES - 1))].unlock();
        }
    }

    @Override
    public long size()
    {
        return volume.size();
    }

    @Override
    public boolean readOnly()
    {
        return false;
    }

    @Override
    public void read(final long offset, final ByteBuffer dst)
    {
        volume.read(offset, dst);
    }

    @Override
    public boolean isZero(final long offset, final long length)
    {
        return volume.isZero(offset, length);
    }

    /**
     * Writes the range with one store per run of at most {@link #STRIPES} blocks, holding their locks: each
     * block's bytes, counter and stamp change together, then it is owed to the peer.
     */
    @Override
    public long write(final long offset, final ByteBuffer src)
    {
        final int limit = src.limit();
        try
        {
            inRuns(offset, src.remaining(), (pos, length) ->
            {
                src.limit(src.position() + (int)length);
                volume.write(pos, src);
            });
        }
        finally
        {
            src.limit(limit);
        }
        return 1;
    }

    @Override
    public long writeZeroes(final long offset, final long length, final boolean mayTrim)
    {
        inRuns(offset, length, volume::writeZeros);
        return 1;
    }

    /** How a run of a local write changes the image. */
    @FunctionalInterface
    private interface Store
    {
        void store(long offset, long length);
    }

    /** Calls {@code store} for each run of {@code [offset, offset + length)}, under the run's locks; then bumps and marks. */
    private void inRuns(final long offset, final long length, final Store store)
    {
        volume.checkRange(offset, length);
        final long end = offset + length;
        long pos = offset;
        try
        {
            while (pos < end)
            {
                final long from = pos >>> blockShift;
                final long to = Math.min(from + STRIPES, ((end - 1) >>> blockShift) + 1);
                final long runEnd = Math.min(end, to << blockShift);
                lockBlocks(from, to);
                try
                {
                    store.store(pos, runEnd - pos);
                    bumpAndMark(from, to);
                }
                finally
                {
                    unlockBlocks(from, to);
                }
                pos = runEnd;
            }
        }
        finally
        {
            wake.run();
        }
    }

    private void bumpAndMark(final long from, final long to)
    {
        for (long block = from; block < to; block++)
        {
            versions.bump(block, slot, clock.tick());
            dirty.mark(block);
        }
        status.localBlockWrites.addAndGet(to - from);
    }

    /** Acknowledged once local: FUA waits for local stable storage only. */
    @Override
    public void whenDone(final long token, final boolean durable, final Runnable reply)
    {
        if (durable)
        {
            flush();
        }
        reply.run();
    }

    @Override
    public void flush(final Runnable reply)
    {
        flush();
        reply.run();
    }

    @Override
    public void served(final int command, final long nanos)
    {
        state.served(command, nanos);
    }

    @Override
    public void diskFault(final DiskWriteException e)
    {
        state.diskError(e.getMessage());
    }

    /** Forces the image, the versions, the dirty map and the clock's floor to local stable storage. */
    public void flush()
    {
        volume.flush();
        versions.force();
        versions.persistHighStamp(clock.high());
        metadata.flush();
    }

    /**
     * The first start of a volume in two-way mode, on an image that already holds data: every block that
     * is not zero becomes this node's version 1 and is owed to the peer, so a peer whose copy is blank (or
     * older) receives it. When both copies hold the same bytes, the versions meet as equal bytes and cost a
     * transfer but no conflict. Returns the blocks marked.
     */
    public long seedFromImage()
    {
        final long blocks = versions.blocks();
        long marked = 0;
        for (long block = 0; block < blocks; block++)
        {
            final long offset = block << blockShift;
            final long n = Math.min(config.blockSize(), volume.size() - offset);
            if (!volume.isZero(offset, n))
            {
                lock(block);
                try
                {
                    versions.bump(block, slot, clock.tick());
                    dirty.mark(block);
                }
                finally
                {
                    unlock(block);
                }
                marked++;
            }
        }
        flush();
        return marked;
    }

    /**
     * A block version from the peer: resolved against the local one under the block's stripe, and written
     * when it wins. Apply thread of the current link only.
     */
    public BlockResolver.Outcome applyRemote(final long block, final long offset, final int[] vector,
        final long stamp, final ByteBuffer incoming)
    {
        synchronized (applyLock)
        {
            lock(block);
            try
            {
                final BlockResolver.Outcome outcome;
                try
                {
                    outcome = resolver.resolve(block, offset, vector, stamp, incoming, this::readLocal);
                }
                catch (final IOException e)
                {
                    // Nothing was written: the loser could not be kept, so the block stays as it is.
                    throw new UncheckedIOException("conflict log " + conflicts + ": " + e.getMessage(), e);
                }
                switch (outcome)
                {
                    case APPLY:
                        status.appliedBlocks.incrementAndGet();
                        writeRemote(offset, incoming);
                        break;
                    case CONFLICT_APPLY:
                        status.conflictsWonByPeer.incrementAndGet();
                        writeRemote(offset, incoming);
                        break;
                    case CONFLICT_KEEP:
                        status.conflictsWonHere.incrementAndGet();
                        break;
                    default:
                        status.ignoredBlocks.incrementAndGet();
                }
                return outcome;
            }
            finally
            {
                unlock(block);
            }
        }
    }

    private void writeRemote(final long offset, final ByteBuffer incoming)
    {
        if (incoming == ZeroBlocks.ZEROS || ZeroBlocks.isZero(incoming, incoming.position(), incoming.remaining()))
        {
            volume.writeZeros(offset, incoming.remaining());
        }
        else
        {
            final int position = incoming.position();
            volume.write(offset, incoming);
            incoming.position(position);
        }
    }

    private ByteBuffer readLocal(final long offset, final int length)
    {
        localCopy.clear().limit(length);
        volume.read(offset, localCopy);
        return localCopy.flip();
    }

    /** Bytes owed to the peer: dirty blocks (in flight ones are counted by the link). */
    public long dirtyBytes()
    {
        return dirty.dirtyBlocks() * config.blockSize();
    }

    /** True when nothing is owed to the peer and nothing sent is unacknowledged. */
    public boolean nothingOwed()
    {
        return dirty.dirtyBlocks() == 0 && dirty.inFlightBlocks() == 0;
    }

    @Override
    public void close() throws IOException
    {
        try (metadata; conflicts; versions)
        {
            versions.persistHighStamp(clock.high());
            volume.close();
        }
    }
}
