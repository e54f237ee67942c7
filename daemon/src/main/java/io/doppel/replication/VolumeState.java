package io.doppel.replication;

import io.doppel.config.VolumeConfig;

import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * What one volume is doing, as {@code /status} reports it: written by the replication threads,
 * read by the admin endpoint. Plain volatile fields and atomic counters; nothing here blocks.
 */
public final class VolumeState
{
    /** Values of {@code replication} in /status. */
    public enum Replication
    {
        CONNECTING, SYNCING, STREAMING, BEHIND, PAUSED, STANDALONE, SPLIT_BRAIN;

        public String wireName()
        {
            return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
        }
    }

    /** Values of {@code disk} in /status: the standby copy's state as this node knows it. */
    public enum Disk
    {
        UP_TO_DATE, SYNCING, INCONSISTENT, OUTDATED, UNKNOWN;

        public String wireName()
        {
            return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
        }
    }

    private volatile VolumeConfig config;
    private final long size;
    private volatile Replication replication = Replication.CONNECTING;
    private volatile Disk disk = Disk.UNKNOWN;
    private volatile boolean connected;
    private volatile String lastError = "";
    private volatile LongSupplier dirtyBytes = () -> 0;
    private volatile LongSupplier logBytes = () -> 0;
    private volatile LongSupplier degradedAcks = () -> 0;
    private volatile LongSupplier inFlightBytes = () -> 0;
    private volatile String syncKind = "none";
    private volatile long syncStartBytesSent;
    private volatile long syncStartNanos;
    private volatile LatencyRecorder latency = LatencyRecorder.NONE;
    /** The one frame whose ACK is being timed (0: none), and when it was sent. */
    private final AtomicLong ackSampleSeq = new AtomicLong();
    private volatile long ackSampleNanos;
    /** The one write whose replication lag is being timed (its lsn; 0: none), and when it was written. */
    private final AtomicLong writeSampleLsn = new AtomicLong();
    private volatile long writeSampleNanos;
    private volatile LongSupplier generation = () -> 0;
    private volatile String verifyState = "none";
    private volatile boolean verifyRepair;
    private final java.util.List<Long> verifyOffsets = new java.util.concurrent.CopyOnWriteArrayList<>();
    final AtomicLong verifiedBytes = new AtomicLong();
    final AtomicLong verifyTotalBytes = new AtomicLong();
    final AtomicLong verifyDifferingBlocks = new AtomicLong();
    final AtomicLong verifySkipped = new AtomicLong();
    final AtomicLong verifyRepaired = new AtomicLong();
    final AtomicLong verifyRuns = new AtomicLong();

    final AtomicLong bytesSent = new AtomicLong();
    final AtomicLong bytesReceived = new AtomicLong();
    final AtomicLong blocksSent = new AtomicLong();
    final AtomicLong blocksReceived = new AtomicLong();
    final AtomicLong zeroBytes = new AtomicLong();
    final AtomicLong compressionSavedBytes = new AtomicLong();
    final AtomicLong syncedBytes = new AtomicLong();
    final AtomicLong syncTotalBytes = new AtomicLong();
    final AtomicLong sentSeq = new AtomicLong();
    final AtomicLong ackedSeq = new AtomicLong();
    final AtomicLong logOverflows = new AtomicLong();
    final AtomicLong connects = new AtomicLong();
    final AtomicLong disconnects = new AtomicLong();
    /** Times the sender waited for the link to drain (the peer or the network could not keep up). */
    final AtomicLong linkStalls = new AtomicLong();
    /** Writes and flushes of this node's image that failed (disk full, I/O error). */
    final AtomicLong diskErrors = new AtomicLong();

    private volatile WatchStatus watch;

    /** The scanner's state when this node's copy is a watched file; null otherwise. */
    public WatchStatus watch()
    {
        return watch;
    }

    public void watch(final WatchStatus value)
    {
        watch = value;
    }

    private volatile io.doppel.twoway.TwoWayStatus twoWay;

    /** The link's counters when the volume is in two-way mode; null otherwise. */
    public io.doppel.twoway.TwoWayStatus twoWay()
    {
        return twoWay;
    }

    public void twoWay(final io.doppel.twoway.TwoWayStatus value)
    {
        twoWay = value;
    }

    public VolumeState(final VolumeConfig config, final long size)
    {
        this.config = config;
        this.size = size;
    }

    public VolumeConfig config()
    {
        return config;
    }

    /** After promote, demote or a live reload: the volume's config as it is now. */
    public void config(final VolumeConfig value)
    {
        config = value;
    }

    public long size()
    {
        return size;
    }

    public Replication replication()
    {
        return replication;
    }

    public void replication(final Replication value)
    {
        replication = value;
    }

    public Disk disk()
    {
        return disk;
    }

    public void disk(final Disk value)
    {
        disk = value;
    }

    public boolean connected()
    {
        return connected;
    }

    public void connected(final boolean value)
    {
        if (connected && !value)
        {
            disconnects.incrementAndGet();
            ackSampleSeq.set(0); // that frame's ACK will never come; sequence numbers start again
            writeSampleLsn.set(0);
        }
        connected = value;
    }

    /** Links lost (closed, cut or timed out) since start. */
    public long disconnects()
    {
        return disconnects.get();
    }

    /** Times sending waited because the link was above its high watermark (back-pressure). */
    public long diskErrors()
    {
        return diskErrors.get();
    }

    /** A write or flush of this node's image failed: counted, and the message kept as the last error. */
    public void diskError(final String message)
    {
        diskErrors.incrementAndGet();
        lastError = message;
    }

    public long linkStalls()
    {
        return linkStalls.get();
    }

    /** Where latencies go; the node's meters attach one. */
    public void latencyRecorder(final LatencyRecorder value)
    {
        latency = value;
    }

    /** An NBD request was answered {@code nanos} after it arrived. */
    public void served(final int nbdCommand, final long nanos)
    {
        latency.nbd(nbdCommand, nanos);
    }

    /**
     * Frame {@code seq} goes out now: unless another frame is being timed, its acknowledgement will be.
     * One sample in flight at a time keeps this free of allocation and locks.
     */
    void sampleSend(final long seq)
    {
        if (ackSampleSeq.get() == 0)
        {
            ackSampleNanos = System.nanoTime();
            ackSampleSeq.set(seq);
        }
    }

    /**
     * A write with log sequence number {@code lsn} (0: not logged) was just made: unless another write is
     * being timed, the time until the standby holds it will be.
     */
    void sampleWrite(final long lsn)
    {
        if (lsn != 0 && writeSampleLsn.get() == 0)
        {
            writeSampleNanos = System.nanoTime();
            writeSampleLsn.set(lsn);
        }
    }

    /** The standby holds every write up to {@code lsn}. */
    void sampleReceived(final long lsn)
    {
        final long sample = writeSampleLsn.get();
        if (sample != 0 && lsn >= sample)
        {
            final long writtenAt = writeSampleNanos;
            if (writeSampleLsn.compareAndSet(sample, 0))
            {
                latency.lag(System.nanoTime() - writtenAt);
            }
        }
    }

    /**
     * Seconds since the write being timed was made, while the standby does not hold it yet (0 when no
     * write waits): while streaming, the age of about the oldest write the standby lacks.
     */
    public double unackedWriteAgeSeconds()
    {
        final long writtenAt = writeSampleNanos;
        return writeSampleLsn.get() == 0 ? 0 : Math.max(0, System.nanoTime() - writtenAt) / 1e9;
    }

    /** The standby acknowledged every frame up to {@code seq}. */
    void sampleAck(final long seq)
    {
        final long sample = ackSampleSeq.get();
        if (sample != 0 && seq >= sample)
        {
            final long sentAt = ackSampleNanos;
            if (ackSampleSeq.compareAndSet(sample, 0))
            {
                latency.ack(System.nanoTime() - sentAt);
            }
        }
    }

    public String lastError()
    {
        return lastError;
    }

    public void lastError(final String value)
    {
        lastError = value;
    }

    /** Where the owner of the volume reads its dirty-map and log sizes from. */
    public void sources(final LongSupplier dirty, final LongSupplier log, final LongSupplier degraded)
    {
        dirtyBytes = dirty;
        logBytes = log;
        degradedAcks = degraded;
    }

    public void inFlightSource(final LongSupplier inFlight)
    {
        inFlightBytes = inFlight;
    }

    /** Bytes claimed for the standby and not yet acknowledged by it (whole blocks). */
    public long inFlightBytes()
    {
        return inFlightBytes.getAsLong();
    }

    /** A sync starts: {@code kind} is "dirty-map", "full-compare" or "full-copy" (into a blank standby). */
    void syncStarted(final String kind)
    {
        syncKind = kind;
        syncStartBytesSent = bytesSent.get();
        syncStartNanos = System.nanoTime();
    }

    /**
     * Seconds until the current sync or compare ends at the pace it has kept since it began; 0 when none
     * runs, -1 before anything is done (no pace yet).
     */
    public double syncEtaSeconds()
    {
        final long total = syncTotalBytes.get();
        final long done = syncedBytes.get();
        if (syncKind.equals("none") || done >= total)
        {
            return 0;
        }
        if (done <= 0)
        {
            return -1;
        }
        return (System.nanoTime() - syncStartNanos) / 1e9 * (total - done) / done;
    }

    /** The kind of the current or last sync: "dirty-map", "full-compare", "full-copy", or "none" yet. */
    public String syncKind()
    {
        return syncKind;
    }

    /** Bytes sent since the current or last sync began (its frames and everything streamed after). */
    public long syncBytesSent()
    {
        return syncKind.equals("none") ? 0 : bytesSent.get() - syncStartBytesSent;
    }

    /** This copy's data generation (hex), as its metadata records it. */
    public String generation()
    {
        final long g = generation.getAsLong();
        return g == 0 ? "" : String.format("%016x", g);
    }

    /** Most differing offsets a verify keeps for /status (the count is exact). */
    static final int VERIFY_OFFSETS_KEPT = 100;

    void verifyStarted(final long total, final boolean repair)
    {
        verifyOffsets.clear();
        verifiedBytes.set(0);
        verifyTotalBytes.set(total);
        verifyDifferingBlocks.set(0);
        verifySkipped.set(0);
        verifyRepaired.set(0);
        verifyRepair = repair;
        verifyState = "running";
        verifyRuns.incrementAndGet();
    }

    void verifyDiffering(final long offset)
    {
        verifyDifferingBlocks.incrementAndGet();
        if (verifyOffsets.size() < VERIFY_OFFSETS_KEPT)
        {
            verifyOffsets.add(offset);
        }
    }

    void verifyEnded(final String how)
    {
        verifyState = how;
    }

    /** "none", "running", "done", or "aborted: why". */
    public String verifyState()
    {
        return verifyState;
    }

    /** Verifies started so far (a client tells its own run from an earlier one by this). */
    public long verifyRuns()
    {
        return verifyRuns.get();
    }

    public boolean verifyRepair()
    {
        return verifyRepair;
    }

    public long verifiedBytes()
    {
        return verifiedBytes.get();
    }

    public long verifyTotalBytes()
    {
        return verifyTotalBytes.get();
    }

    public long verifyDifferingBlocks()
    {
        return verifyDifferingBlocks.get();
    }

    public long verifySkippedBlocks()
    {
        return verifySkipped.get();
    }

    public long verifyRepairedBlocks()
    {
        return verifyRepaired.get();
    }

    /** Byte offsets of the first differing blocks found by the last verify. */
    public java.util.List<Long> verifyDifferingOffsets()
    {
        return java.util.List.copyOf(verifyOffsets);
    }

    /** Where the volume's current generation is read from (its metadata). */
    public void generationSource(final LongSupplier source)
    {
        generation = source;
    }

    /** Writes acknowledged without the standby's answer, against the volume's ack level. */
    public long degradedAcks()
    {
        return degradedAcks.getAsLong();
    }

    /** Bytes marked in the dirty map (whole blocks). */
    public long dirtyBytes()
    {
        return dirtyBytes.getAsLong();
    }

    /** Bytes waiting in the replication log. */
    public long logBytes()
    {
        return logBytes.getAsLong();
    }

    public long bytesSent()
    {
        return bytesSent.get();
    }

    public long bytesReceived()
    {
        return bytesReceived.get();
    }

    public long blocksSent()
    {
        return blocksSent.get();
    }

    public long blocksReceived()
    {
        return blocksReceived.get();
    }

    public long zeroBytes()
    {
        return zeroBytes.get();
    }

    public long compressionSavedBytes()
    {
        return compressionSavedBytes.get();
    }

    public long syncedBytes()
    {
        return syncedBytes.get();
    }

    public long syncTotalBytes()
    {
        return syncTotalBytes.get();
    }

    public long sentSeq()
    {
        return sentSeq.get();
    }

    public long ackedSeq()
    {
        return ackedSeq.get();
    }

    public long logOverflows()
    {
        return logOverflows.get();
    }

    public long connects()
    {
        return connects.get();
    }
}
