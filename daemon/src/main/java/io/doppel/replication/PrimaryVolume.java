package io.doppel.replication;

import io.doppel.config.VolumeConfig;
import io.doppel.storage.MetadataFile;
import io.doppel.storage.Volume;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * A volume this node serves as primary: the write API every writer goes through (today the Java API
 * and the demo; NBD later), backed by the mapped image, the dirty map and the replication log.
 */
public final class PrimaryVolume implements AutoCloseable
{
    private final VolumeConfig config;
    private final Volume volume;
    private final MetadataFile metadata;
    private final VolumeState state;
    private final ReplicationLog log;

    public PrimaryVolume(final VolumeConfig config, final Volume volume, final MetadataFile metadata,
        final VolumeState state, final ReplicationLog log)
    {
        this.config = config;
        this.volume = volume;
        this.metadata = metadata;
        this.state = state;
        this.log = log;
        state.pending(this::dirtyBytes, this::logBytes);
    }

    public String name()
    {
        return config.name();
    }

    public VolumeConfig config()
    {
        return config;
    }

    public long size()
    {
        return volume.size();
    }

    public VolumeState state()
    {
        return state;
    }

    Volume volume()
    {
        return volume;
    }

    MetadataFile metadata()
    {
        return metadata;
    }

    ReplicationLog log()
    {
        return log;
    }

    /** Writes {@code src.remaining()} bytes at {@code offset}; they are replicated in write order. */
    public void write(final long offset, final ByteBuffer src)
    {
        log.write(offset, src);
    }

    public void read(final long offset, final ByteBuffer dst)
    {
        volume.read(offset, dst);
    }

    /** Forces written data and the dirty bitmap to local stable storage. */
    public void flush()
    {
        volume.flush();
        metadata.flush();
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
            volume.close();
        }
    }
}
