package io.doppel.replication;

import io.doppel.config.VolumeConfig;
import io.doppel.nbd.NbdExport;
import io.doppel.storage.DiskWriteException;
import io.doppel.storage.MetadataFile;
import io.doppel.storage.Volume;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A volume this node serves as primary: the write path every writer goes through (NBD clients, the
 * Java API, the demo), backed by the mapped image, the dirty map and the replication log, and the
 * NBD export whose replies follow the volume's acknowledgement level.
 */
public final class PrimaryVolume implements AutoCloseable, NbdExport
{
    private final VolumeConfig config;
    private final Volume volume;
    private final MetadataFile metadata;
    private final VolumeState state;
    private final ReplicationLog log;
    private final AckTracker acks;
    /** Watch mode only (else null / always settled): what was shipped, and whether a whole scan found no change. */
    private volatile io.doppel.watch.WatchHashes watchHashes;
    private volatile java.util.function.BooleanSupplier settled = () -> true;

    public PrimaryVolume(final VolumeConfig config, final Volume volume, final MetadataFile metadata,
        final VolumeState state, final ReplicationLog log, final AckTracker acks)
    {
        this.acks = acks;
        this.config = config;
        this.volume = volume;
        this.metadata = metadata;
        this.state = state;
        this.log = log;
        state.sources(this::dirtyBytes, this::logBytes, acks::degraded);
        state.inFlightSource(() -> metadata.dirtyMap().inFlightBlocks() * config.blockSize());
        state.generationSource(metadata::currentGen);
    }

    @Override
    public String name()
    {
        return config.name();
    }

    /** The volume's config as it is now: a live reload may have changed its ack level or compression. */
    public VolumeConfig config()
    {
        return state.config();
    }

    @Override
    public long size()
    {
        return volume.size();
    }

    public VolumeState state()
    {
        return state;
    }

    public Volume volume()
    {
        return volume;
    }

    public MetadataFile metadata()
    {
        return metadata;
    }

    /** Refuses every later write (the first step of a demote). */
    public void fence()
    {
        log.fence();
    }

    /** Stops logging for a role change: waiting replies are released, unsent records stay dirty. */
    public void stopReplicating()
    {
        log.stopLogging();
    }

    ReplicationLog log()
    {
        return log;
    }

    AckTracker acks()
    {
        return acks;
    }

    /**
     * NBD on a watched volume is a read-only export: the file belongs to the program that writes it, and
     * doppel never writes it on the primary. (A standby promoted under a watch config is not watched: its
     * copy was written by doppel, and doppel's write path serves it.)
     */
    @Override
    public boolean readOnly()
    {
        return watchHashes != null;
    }

    /** Makes this a watched volume: the sender records shipped hashes, and up to date waits for {@code gate}. */
    public void watch(final io.doppel.watch.WatchHashes hashes, final java.util.function.BooleanSupplier gate)
    {
        this.watchHashes = hashes;
        this.settled = gate;
    }

    private volatile boolean comparing;

    /** The sender is comparing the whole volume with the standby (a watched file's scans wait for it). */
    public boolean comparing()
    {
        return comparing;
    }

    void comparing(final boolean value)
    {
        comparing = value;
    }

    public io.doppel.watch.WatchHashes watchHashes()
    {
        return watchHashes;
    }

    /** Always true, except for a watched volume whose last whole scan did not find the file settled. */
    public java.util.function.BooleanSupplier settledGate()
    {
        return () -> settled.getAsBoolean();
    }

    /** A watched file's blocks {@code [from, to)} changed: marked dirty for the sender (see {@link ReplicationLog#markChanged}). */
    public void markChanged(final long from, final long to)
    {
        log.markChanged(from, to);
    }

    /** A watched file may have changed: a standby reported up to date is outdated until shipped and settled. */
    public void noteExternalChange()
    {
        log.noteExternalChange();
    }

    private void checkWritable()
    {
        if (watchHashes != null)
        {
            throw new IllegalStateException("volume " + config.name() + " is watched (source = \"watch\"): another"
                + " program writes " + volume.path() + ", doppel never does");
        }
    }

    /**
     * Writes {@code src.remaining()} bytes at {@code offset}; they are replicated in write order.
     * Returns the write's lsn for {@link #whenDone} (0 when no peer was streaming).
     */
    @Override
    public long write(final long offset, final ByteBuffer src)
    {
        checkWritable();
        final long lsn = log.write(offset, src);
        state.sampleWrite(lsn);
        return lsn;
    }

    /** Zeroes a range (a hole where allowed and possible); replicated in write order as ZERO frames. */
    @Override
    public long writeZeroes(final long offset, final long length, final boolean mayTrim)
    {
        checkWritable();
        final long lsn = log.writeZeroes(offset, length, mayTrim);
        state.sampleWrite(lsn);
        return lsn;
    }

    @Override
    public void whenDone(final long token, final boolean durable, final Runnable reply)
    {
        if (durable)
        {
            flush();
        }
        if (token == 0 && state.config().ack() != VolumeConfig.Ack.ASYNC)
        {
            acks.noteDegraded(); // not logged: no peer streaming, so only this node has it
        }
        switch (state.config().ack())
        {
            case ASYNC:
                reply.run();
                break;
            case RECEIVED:
                acks.whenReceived(token, reply);
                break;
            default:
                if (durable)
                {
                    acks.whenDurable(token, reply);
                }
                else
                {
                    acks.whenReceived(token, reply);
                }
        }
    }

    @Override
    public void flush(final Runnable reply)
    {
        final long lsn = log.lastLoggedLsn();
        flush();
        if (!log.isLogging() && state.config().ack() != VolumeConfig.Ack.ASYNC)
        {
            acks.noteDegraded();
        }
        switch (state.config().ack())
        {
            case ASYNC:
                reply.run();
                break;
            case RECEIVED:
                acks.whenReceived(lsn, reply);
                break;
            default:
                acks.whenDurable(lsn, reply);
        }
    }

    /** Acknowledgements released without the standby's answer (link down or log overflow). */
    public long degradedAcks()
    {
        return acks.degraded();
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

    /** Forces written data and the dirty bitmap to local stable storage. */
    public void flush()
    {
        flushVolume();
        metadata.flush();
    }

    /** Forces written data (not the metadata) to local stable storage: the background flush. */
    public void flushVolume()
    {
        final long lsn = log.writes();
        volume.flush();
        log.forcedUpTo(lsn);
    }

    /** Bytes the dirty map marks (whole blocks); while streaming these are also in the log. */
    public long dirtyBytes()
    {
        return metadata.dirtyMap().dirtyBlocks() * config.blockSize();
    }

    /** Bytes waiting in the replication log (or taken from it and not yet handed to the link). */
    public long logBytes()
    {
        return log.queuedBytes();
    }

    /** Nothing left to hand to the link: no dirty block and an empty log. */
    public boolean nothingPending()
    {
        return dirtyBytes() == 0 && logBytes() == 0;
    }

    /**
     * True when the standby holds everything written so far: streaming, nothing pending, and every
     * frame sent has been acknowledged.
     */
    public boolean inSync()
    {
        return state.replication() == VolumeState.Replication.STREAMING && nothingPending()
            && state.ackedSeq() == state.sentSeq() && state.disk() == VolumeState.Disk.UP_TO_DATE;
    }

    @Override
    public void close() throws IOException
    {
        log.stopLogging();
        try (metadata)
        {
            try
            {
                if (watchHashes != null)
                {
                    watchHashes.close();
                }
            }
            finally
            {
                volume.close();
            }
        }
    }
}
