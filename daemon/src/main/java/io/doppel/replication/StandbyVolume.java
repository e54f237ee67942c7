package io.doppel.replication;

import io.doppel.config.VolumeConfig;
import java.nio.file.Path;
import io.doppel.storage.DirtyMap;
import io.doppel.storage.DiskWriteException;
import java.time.format.DateTimeFormatter;
import java.time.ZoneOffset;
import java.time.Instant;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.io.UncheckedIOException;
import io.doppel.log.Log;
import io.doppel.nbd.NbdExport;
import io.doppel.storage.MetadataFile;
import io.doppel.storage.Volume;
import io.netty.channel.Channel;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A volume this node holds as standby: the mapped copy that the primary's frames are written into.
 * At most one primary link feeds it; a new, accepted link replaces the old one (the old TCP
 * connection may be dead without either side knowing yet).
 */
public final class StandbyVolume implements AutoCloseable, NbdExport
{
    private final VolumeConfig config;
    private volatile boolean createdBlank;
    private final Volume volume;
    private final MetadataFile metadata;
    private final VolumeState state;
    private final AtomicReference<Channel> link = new AtomicReference<>();
    private boolean retired;

    public StandbyVolume(final VolumeConfig config, final Volume volume, final MetadataFile metadata,
        final VolumeState state)
    {
        this(config, volume, metadata, state, true);
    }

    /**
     * {@code active = false} (a demote in progress): reads are served, but no primary's link is taken
     * and the volume's state is left alone until {@link #activate}.
     */
    public StandbyVolume(final VolumeConfig config, final Volume volume, final MetadataFile metadata,
        final VolumeState state, final boolean active)
    {
        this.config = config;
        this.volume = volume;
        this.metadata = metadata;
        this.state = state;
        this.retired = !active;
        if (active)
        {
            activate();
        }
    }

    /** Takes links from now on and reports as a standby. */
    public synchronized void activate()
    {
        retired = false;
        state.replication(VolumeState.Replication.CONNECTING);
        state.disk(diskState(metadata.disk()));
        state.generationSource(metadata::currentGen);
        state.sources(() -> 0, () -> 0, () -> 0);
        state.inFlightSource(() -> 0);
    }

    @Override
    public String name()
    {
        return config.name();
    }

    /** The volume's config as it is now (a live reload may have changed what can change live). */
    public VolumeConfig config()
    {
        return state.config();
    }

    public Volume volume()
    {
        return volume;
    }

    public MetadataFile metadata()
    {
        return metadata;
    }

    /**
     * Whether this copy may differ from what its metadata claims (a machine crash lost applied writes, or
     * it was a primary with writes the peer never got): the primary must compare the whole volume.
     * Persisted; cleared by a completed sync.
     */
    boolean doubtful()
    {
        return metadata.copyInDoubt();
    }

    /** The node created this image just now (it did not exist): it is sparse and reads zero throughout. */
    public void createdBlank()
    {
        createdBlank = true;
    }

    /** A blank image never synced into: a sync need not compare, only send non-zero blocks. */
    boolean blank()
    {
        return createdBlank && metadata.disk() == MetadataFile.Disk.UNKNOWN && metadata.currentGen() == 0;
    }

    synchronized void syncCompleted(final long gen)
    {
        // A former primary's own dirty bits mean nothing once its copy equals the primary's.
        metadata.dirtyMap().returnInFlight();
        metadata.dirtyMap().clearAll();
        metadata.flush();
        metadata.copyState(gen, MetadataFile.Disk.CONSISTENT);
        metadata.alRecoveryDone(); // a standby's activity log has nothing to recover once its copy is whole
    }

    @Override
    public long size()
    {
        return volume.size();
    }

    /** The standby's copy is served read-only: only the primary's stream writes it. */
    @Override
    public boolean readOnly()
    {
        return true;
    }

    @Override
    public void read(final long offset, final ByteBuffer dst)
    {
        volume.read(offset, dst);
    }

    @Override
    public long write(final long offset, final ByteBuffer src)
    {
        throw new UnsupportedOperationException("standby copy " + name() + " is read-only");
    }

    @Override
    public long writeZeroes(final long offset, final long length, final boolean mayTrim)
    {
        throw new UnsupportedOperationException("standby copy " + name() + " is read-only");
    }

    @Override
    public void whenDone(final long token, final boolean durable, final Runnable reply)
    {
        reply.run();
    }

    @Override
    public void flush(final Runnable reply)
    {
        volume.flush();
        reply.run();
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

    public VolumeState state()
    {
        return state;
    }

    /**
     * Before a split-brain policy overwrites this copy: writes every block this node changed on its own
     * (its dirty map, from when it was primary) into a sparse image of the volume's size beside the
     * metadata, forced to disk, so nothing is silently lost. Returns the file, or null when nothing changed.
     */
    synchronized Path saveDivergentBlocks(final String nodeName)
    {
        final DirtyMap map = metadata.dirtyMap();
        map.returnInFlight();
        if (metadata.alRecoveryPending())
        {
            // It crashed as primary: blocks in its hot extents may be missing from the map. Save them too.
            final long extentBlocks = metadata.activityLog().extentBytes() / config.blockSize();
            for (final long extent : metadata.activityLog().recoveredExtents())
            {
                map.markBlocks(Math.min(map.blockCount(), extent * extentBlocks),
                    Math.min(map.blockCount(), (extent + 1) * extentBlocks));
            }
        }
        final long blocks = map.dirtyBlocks();
        if (blocks == 0)
        {
            return null;
        }
        final Path file = metadata.path().resolveSibling(name() + ".split-brain-"
            + DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'").withZone(ZoneOffset.UTC)
                .format(Instant.now()) + ".img");
        final int blockSize = config.blockSize();
        try (FileChannel out = FileChannel.open(file,
            StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE))
        {
            final ByteBuffer buf = ByteBuffer.allocateDirect(blockSize);
            for (long b = map.nextDirty(0); b >= 0; b = map.nextDirty(b + 1))
            {
                final long offset = b * blockSize;
                buf.clear().limit((int)Math.min(blockSize, volume.size() - offset));
                volume.read(offset, buf);
                buf.flip();
                while (buf.hasRemaining())
                {
                    out.write(buf, offset + buf.position());
                }
            }
            if (out.size() < volume.size())
            {
                out.write(ByteBuffer.wrap(new byte[1]), volume.size() - 1); // as long as the volume, sparse
            }
            out.force(true);
        }
        catch (final IOException e)
        {
            throw new UncheckedIOException("split brain: cannot save this copy's " + blocks
                + " divergent block(s) to " + file + " (nothing was overwritten): " + e.getMessage(), e);
        }
        Log.warn(nodeName + "/" + name(), "split brain: saved " + blocks + " block(s) this node changed"
            + " on its own to " + file + " before the primary overwrites them");
        map.clearAll();
        metadata.flush();
        return file;
    }

    /**
     * Makes {@code channel} the volume's feed, closing any previous one. Link handlers hold this
     * volume's monitor while they apply a frame, so an old link's frame never lands after the new
     * link has taken over.
     */
    synchronized void attach(final Channel channel)
    {
        if (retired)
        {
            channel.close(); // being promoted: no primary may feed it any more
            return;
        }
        final Channel previous = link.getAndSet(channel);
        if (previous != null && previous != channel)
        {
            previous.close();
            linkLost();
        }
        state.connected(true);
        state.connects.incrementAndGet();
    }

    /** The link {@code channel} ended; if it was the current feed, the volume waits for the next. */
    synchronized void detach(final Channel channel)
    {
        if (link.compareAndSet(channel, null))
        {
            state.connected(false);
            if (state.replication() != VolumeState.Replication.SPLIT_BRAIN)
            {
                state.replication(VolumeState.Replication.CONNECTING);
            }
            linkLost();
        }
    }

    static VolumeState.Disk diskState(final MetadataFile.Disk disk)
    {
        switch (disk)
        {
            case CONSISTENT: return VolumeState.Disk.OUTDATED; // consistent, but the primary may have moved on
            case INCONSISTENT: return VolumeState.Disk.INCONSISTENT;
            default: return VolumeState.Disk.UNKNOWN;
        }
    }

    /**
     * Writing or flushing the image failed: the copy is marked inconsistent (durably, in the metadata, which
     * lives in the data directory) and the link feeding it is closed, so nothing more is acknowledged. The
     * primary keeps every unacknowledged block dirty and sends it again when it reconnects, which fails the
     * same way until the fault is cleared. After a failed flush, blocks acknowledged earlier may be lost
     * too: the copy is put in doubt, so the next sync compares the whole volume.
     */
    public synchronized void diskFault(final String nodeName, final DiskWriteException e)
    {
        state.diskError(e.getMessage());
        state.disk(VolumeState.Disk.INCONSISTENT);
        Log.error(nodeName + "/" + name(), "cannot " + (e.flush() ? "flush" : "write") + " this copy: " + e.getMessage()
            + "; copy marked inconsistent, nothing more is acknowledged until a sync completes");
        try
        {
            metadata.copyState(metadata.currentGen(), MetadataFile.Disk.INCONSISTENT);
            if (e.flush())
            {
                metadata.doubtCopy();
            }
        }
        catch (final RuntimeException | InternalError m)
        {
            Log.error(nodeName + "/" + name(), "cannot record the fault in the metadata either: " + m.getMessage());
        }
        final Channel ch = link.get();
        if (ch != null)
        {
            ch.close();
        }
    }

    /** A copy cut off mid-sync is inconsistent; one cut off while up to date may now be outdated. */
    private void linkLost()
    {
        if (state.disk() == VolumeState.Disk.SYNCING)
        {
            state.disk(VolumeState.Disk.INCONSISTENT);
        }
        else if (state.disk() == VolumeState.Disk.UP_TO_DATE)
        {
            state.disk(VolumeState.Disk.OUTDATED);
        }
    }

    boolean isCurrent(final Channel channel)
    {
        return !retired && link.get() == channel;
    }

    /**
     * Stops taking frames for a promote: a link attached now is closed, and frames of a current one are
     * dropped (link handlers check {@link #isCurrent} under this monitor). Returns false, and changes
     * nothing, when a primary is connected right now.
     */
    public synchronized boolean retire()
    {
        if (link.get() != null)
        {
            return false;
        }
        retired = true;
        return true;
    }

    /** Closes the current link, if any, and waits briefly for it to be gone (shutdown). */
    public void disconnect()
    {
        final Channel ch = link.get();
        if (ch != null)
        {
            ch.close().awaitUninterruptibly(2, java.util.concurrent.TimeUnit.SECONDS);
        }
    }

    @Override
    public void close() throws IOException
    {
        disconnect();
        try (metadata)
        {
            volume.close();
        }
    }
}
