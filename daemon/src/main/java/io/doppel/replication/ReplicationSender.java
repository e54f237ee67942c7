package io.doppel.replication;

import com.dynatrace.hash4j.hashing.HashValue128;
import io.doppel.config.NodeConfig;
import io.doppel.config.PeerConfig;
import io.doppel.config.VolumeConfig;
import io.doppel.log.Log;
import io.doppel.net.Hello;
import io.doppel.net.LinkSecurity;
import io.doppel.net.ProtocolException;
import io.doppel.net.Transport;
import io.doppel.net.WireProtocol;
import io.doppel.pipeline.BlockEncoder;
import io.doppel.pipeline.BlockHash;
import io.doppel.pipeline.BlockHasher;
import io.doppel.pipeline.Compression;
import io.doppel.storage.DirtyMap;
import io.doppel.storage.Volume;
import io.doppel.storage.MetadataFile;
import io.doppel.storage.ZeroBlocks;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.util.concurrent.FastThreadLocalThread;

import java.nio.ByteBuffer;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.zip.CRC32C;

/**
 * The primary's replication engine for one volume, on its own thread (never an event loop, since it
 * reads the mapped image and may wait for the link to drain).
 *
 * <p>Per connection: connect, handshake (generations decide), then bring the standby up to date — from
 * the dirty map when it covers the difference, else by comparing block hashes (only differing blocks are
 * marked dirty and sent) — switch to streaming the ordered replication log, and fall back to catch-up
 * from the dirty map if the log overflows. On any failure the link is closed and the cycle starts again
 * after a backoff; what was in flight comes back as dirty (in-flight epochs), so nothing is lost.
 */
public final class ReplicationSender implements Runnable, AutoCloseable
{
    /** Hash-compare batches in flight, so the standby hashes the next while we compare this one. */
    static final int HASH_WINDOW = 4;
    static final int HASH_BATCH_BYTES = 16 << 20;
    static final int FLUSH_EVERY_FRAMES = 32;
    /** A batch of frames is handed to the event loop at this size at the latest (1 MiB blocks: one each). */
    static final int BATCH_BYTES = 256 << 10;
    static final long MIN_BACKOFF_MS = 100;
    static final long MAX_BACKOFF_MS = 5_000;
    static final long REJECTED_BACKOFF_MS = 10_000;
    static final long EPOCH_NANOS = TimeUnit.MILLISECONDS.toNanos(200);
    static final int SYNC_FROM_DIRTY_MAP = 0;
    static final int SYNC_FULL = 1;
    static final int SYNC_DISCARD_STANDBY_CHANGES = 2;
    /** An epoch ends after this many claimed bytes (or EPOCH_NANOS): it bounds what a link drop sends again. */
    static final long EPOCH_BYTES = 4L << 20;
    /** Blocks compared per verify round trip, between replicated writes. */
    static final int VERIFY_BATCH_BLOCKS = 4096;
    static final long VERIFY_PACE_NANOS = TimeUnit.MILLISECONDS.toNanos(100);

    private final PrimaryVolume primary;
    private final Volume volume;
    private final DirtyMap dirtyMap;
    private final ReplicationLog log;
    private final AckTracker acks;
    private final VolumeState state;
    private final NodeConfig node;
    private final PeerConfig peer;
    private final Transport transport;
    private final LinkSecurity security;
    /** The TLS client context for this peer (null: TLS off). */
    private final io.netty.handler.ssl.SslContext tls;
    private final String component;
    private final int blockSize;
    private final int frameBlocks;
    /** The hash of a whole zero block, computed once for every compare and verify. */
    private final HashValue128 zeroBlockHash;
    /** Hashes local blocks for compares and verifies without an object per block (sender thread only). */
    private final BlockHasher hasher = new BlockHasher();
    private final BlockEncoder encoder;
    private final ByteBufAllocator alloc = PooledByteBufAllocator.DEFAULT;
    private final CRC32C crc = new CRC32C();
    private final int[] runLength = new int[1];
    /**
     * A private copy of the range being sent: writers keep changing the mapped image, and the zero check,
     * the hash and the compression must all see the same bytes (a block torn by a concurrent write is
     * still consistent with its own hash, and the write has marked it dirty again).
     */
    private final ByteBuffer snapshot = ByteBuffer.allocateDirect(WireProtocol.MAX_PAYLOAD_BYTES)
        .order(java.nio.ByteOrder.LITTLE_ENDIAN);
    private final long[] recordWhere = new long[3];
    private final ByteBuf[] recordData = new ByteBuf[1];
    private final Thread thread;
    /** A watched volume's record of what was shipped (null: not watched); see {@link io.doppel.watch.WatchHashes}. */
    private final io.doppel.watch.WatchHashes shipped;
    /** A watched volume's gate: true only after a whole scan found nothing changing (always true otherwise). */
    private final java.util.function.BooleanSupplier settled;
    /** Watched volumes: a private copy of one block, so a compare hashes the same bytes it records. */
    private final ByteBuffer compareCopy;
    /** SYNC_DONE was acknowledged, but the watch gate held the up-to-date report back. */
    private boolean upToDatePending;

    private volatile boolean running = true;
    private Channel channel;
    private PrimaryLinkHandler link;
    private long seq;
    private int unflushed;
    /**
     * Frames not yet handed to the event loop. One composite per batch of up to {@link #FLUSH_EVERY_FRAMES}
     * frames: a write from this thread is a task for the event loop and often a wakeup (a syscall and a
     * context switch), so one write per frame cost more than encoding the frame.
     */
    private CompositeByteBuf batch;
    private long syncDoneSeq = -1;
    /** A SYNC_DONE was sent on this link and not yet acknowledged; the generation it carried. */
    private boolean syncDoneUnacked;
    private long syncDoneGen;
    /** The standby's handshake on the current link: its generation and copy state. */
    private Hello peerHello;
    /** Epoch bookkeeping (see DirtyMap): the previous epoch settles once the standby acked its last frame. */
    private boolean previousEpochBusy;
    private int previousEpoch;
    private long previousEpochEndSeq;
    private long epochStartNanos;
    private long epochBytes;
    private boolean recoveredExtentsPending;
    /** Operator requests (admin thread → this thread). */
    private volatile boolean paused;
    private volatile boolean fullResyncRequested;
    private volatile Boolean verifyRequested; // null: none; else whether to repair
    /** The online verify in progress on this link: next block, and whether to repair. */
    private long verifyNext = -1;
    private long lastVerifyNanos;
    private boolean verifyRepair;
    private final long[] verifyHashes = new long[2 * VERIFY_BATCH_BLOCKS];
    private final java.util.BitSet verifySkip = new java.util.BitSet(VERIFY_BATCH_BLOCKS);
    /** A whole-volume compare is running (a resync requested meanwhile is served by it). */
    private boolean comparingAll;
    /** Whether shipped dirty runs count as sync progress (a resync from the dirty map). */
    private boolean countProgress;
    /** A split brain was found: /status keeps saying so until an operator restarts one side. */
    private boolean splitBrainSeen;
    /** The split-brain policy chose the standby's changes to be discarded on this link. */
    private boolean discardStandbyChanges;
    private long flushRequestedLsn;
    private long lastSentLsn;

    public ReplicationSender(final PrimaryVolume primary, final NodeConfig node, final PeerConfig peer,
        final Transport transport, final LinkSecurity security)
    {
        this.security = security;
        try
        {
            this.tls = security.tls() ? security.clientContext(peer) : null;
        }
        catch (final javax.net.ssl.SSLException e)
        {
            throw new IllegalStateException("cannot build a TLS context for peer " + peer.name() + ": " + e, e);
        }
        this.primary = primary;
        this.volume = primary.volume();
        this.dirtyMap = primary.metadata().dirtyMap();
        this.log = primary.log();
        this.acks = primary.acks();
        this.state = primary.state();
        this.node = node;
        this.peer = peer;
        this.transport = transport;
        this.component = node.name() + "/" + primary.name();
        this.blockSize = primary.config().blockSize();
        this.frameBlocks = WireProtocol.MAX_PAYLOAD_BYTES / blockSize;
        this.zeroBlockHash = BlockHash.ofZeros(blockSize);
        this.encoder = new BlockEncoder(primary.config().compression());
        this.recoveredExtentsPending = primary.metadata().alRecoveryPending();
        this.shipped = primary.watchHashes();
        this.settled = primary.settledGate();
        this.compareCopy = shipped == null ? null
            : ByteBuffer.allocateDirect(blockSize).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        // A FastThreadLocalThread, like an event loop: Netty 4.2 gives only those a recycler pool for the
        // pooled buffers' wrapper objects, so a plain Thread allocated ~120 B per frame it encoded.
        this.thread = new FastThreadLocalThread(this, "doppel-sender-" + primary.name());
        this.thread.setDaemon(true);
    }

    public void start()
    {
        thread.start();
    }

    @Override
    public void run()
    {
        try
        {
            runLinks();
        }
        finally
        {
            encoder.close();
        }
    }

    private void runLinks()
    {
        long backoff = MIN_BACKOFF_MS;
        String lastProblem = "";
        while (running)
        {
            if (paused)
            {
                state.replication(VolumeState.Replication.PAUSED);
                sleep(50);
                continue;
            }
            state.replication(splitBrainSeen ? VolumeState.Replication.SPLIT_BRAIN : VolumeState.Replication.CONNECTING);
            long wait = backoff;
            try
            {
                connect();
                authenticate();
                handshake();
                backoff = MIN_BACKOFF_MS;
                wait = backoff;
                lastProblem = "";
                state.lastError("");
                synchronize();
                stream();
            }
            catch (final InterruptedException e)
            {
                break;
            }
            catch (final PeerRejectedException e)
            {
                e.countIn(security);
                // Config must change on one side; retry slowly, without growing the link backoff.
                lastProblem = report(e.getMessage(), lastProblem, true);
                wait = REJECTED_BACKOFF_MS;
            }
            catch (final LinkDownException e)
            {
                if (link != null && link.tlsFailure() != null)
                {
                    final String reason = LinkSecurity.reasonOf(link.tlsFailure());
                    security.failed(reason);
                    lastProblem = report("TLS: " + e.getMessage() + " (" + reason + ")", lastProblem, true);
                    wait = REJECTED_BACKOFF_MS;
                }
                else
                {
                    lastProblem = report(e.getMessage(), lastProblem, false);
                }
            }
            catch (final ProtocolException e)
            {
                lastProblem = report("protocol error: " + e.getMessage(), lastProblem, true);
            }
            catch (final RuntimeException | Error e)
            {
                lastProblem = report("unexpected " + e, lastProblem, true);
            }
            finally
            {
                disconnect();
            }
            if (running)
            {
                sleep(wait);
                backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
            }
        }
    }

    private String report(final String problem, final String lastProblem, final boolean error)
    {
        state.lastError(problem);
        if (!problem.equals(lastProblem))
        {
            final String line = "peer " + peer.name() + " at " + peer.address().getHostString() + ":"
                + peer.address().getPort() + ": " + problem;
            if (error)
            {
                Log.error(component, line);
            }
            else
            {
                Log.warn(component, line);
            }
        }
        return problem;
    }

    private void connect() throws LinkDownException, InterruptedException
    {
        link = new PrimaryLinkHandler(component, state, acks, node.heartbeatTimeoutMillis());
        channel = LinkDialer.connect(transport, node, peer, tls, null, link);
    }

    /** See {@link LinkAuthClient}: TLS handshake done and checked, then the pre-shared-key exchange. */
    private void authenticate() throws LinkDownException, PeerRejectedException, InterruptedException
    {
        LinkAuthClient.authenticate(channel, tls != null, node, peer, security, link::awaitAuthReply, crc);
    }

    private void handshake() throws LinkDownException, PeerRejectedException, InterruptedException
    {
        final MetadataFile meta = primary.metadata();
        final Hello mine = Hello.of(WireProtocol.ROLE_PRIMARY, volume.size(), blockSize, node.name(), peer.name(),
            primary.name()).withGenerations(meta.currentGen(), meta.bitmapGen(), meta.disk().ordinal(),
            meta.copyInDoubt() ? Hello.FLAG_UNCLEAN : 0).withChanges(meta.trackingSince(), changedBlocks());
        final ByteBuf buf = alloc.buffer();
        mine.encode(buf, WireProtocol.TYPE_HELLO, crc);
        channel.writeAndFlush(buf);
        final Hello reply = link.awaitHello(node.heartbeatTimeoutMillis());
        final String mismatch = reply.mismatch(node.name(), peer.name(), WireProtocol.ROLE_STANDBY, volume.size(),
            blockSize);
        if (mismatch != null || !reply.volume().equals(primary.name()))
        {
            final String why = mismatch != null ? mismatch : "peer answered for volume " + reply.volume();
            final ByteBuf reject = alloc.buffer();
            Hello.encodeReject(reject, why, crc);
            channel.writeAndFlush(reject);
            throw new PeerRejectedException(why);
        }
        String splitBrain = splitBrain(reply);
        discardStandbyChanges = false;
        if (splitBrain != null)
        {
            final String verdict = afterSplitBrain(reply);
            if (verdict == null)
            {
                discardStandbyChanges = true;
                Log.warn(component, splitBrain.substring(0, splitBrain.indexOf(". ") + 1) + " after-split-brain = \""
                    + primary.config().afterSplitBrain().configName() + "\": discarding the changes of " + peer.name()
                    + " (" + reply.changedBlocks() + " block(s); it saves them beside its metadata first) and"
                    + " comparing the whole volume");
            }
            else
            {
                splitBrain = splitBrain + " (" + verdict + ")";
            }
        }
        if (splitBrain != null && !discardStandbyChanges)
        {
            splitBrainSeen = true;
            state.replication(VolumeState.Replication.SPLIT_BRAIN);
            final ByteBuf reject = alloc.buffer();
            Hello.encodeReject(reject, splitBrain, crc);
            channel.writeAndFlush(reject);
            throw new PeerRejectedException(splitBrain);
        }
        peerHello = reply;
        splitBrainSeen = false;
        primary.comparing(true); // before connected: a watched file's scans wait for the sync's compare
        state.connected(true);
        state.connects.incrementAndGet();
        Log.info(component, "connected to peer " + peer.name() + " (protocol v" + reply.agreedVersion() + ", "
            + transport.name() + ", " + linkSecurityText() + ")");
    }

    /** How this link is secured, for the connect line: "mutual TLS (TLSv1.3, ...)", "PSK", or "plaintext". */
    private String linkSecurityText()
    {
        final StringBuilder b = new StringBuilder();
        final io.netty.handler.ssl.SslHandler ssl = channel.pipeline().get(io.netty.handler.ssl.SslHandler.class);
        if (ssl != null)
        {
            b.append("mutual TLS ").append(ssl.engine().getSession().getProtocol()).append(' ')
                .append(ssl.engine().getSession().getCipherSuite());
        }
        if (peer.psk() != null)
        {
            b.append(b.length() > 0 ? " + " : "").append("pre-shared key");
        }
        return b.length() == 0 ? "plaintext" : b.toString();
    }

    /**
     * Why the standby's history and ours both moved on since they last agreed (each side wrote as
     * primary), or null. Nothing is overwritten then: the link is refused until an operator decides.
     */
    private String splitBrain(final Hello reply)
    {
        final MetadataFile meta = primary.metadata();
        if (reply.bitmapGen() != 0 && !meta.knows(reply.currentGen()))
        {
            final String both = meta.tracking()
                ? " while " + node.name() + " did too (generation " + Long.toHexString(meta.currentGen()) + ")"
                : "; " + node.name() + " lacks those writes";
            return "split brain on volume " + primary.name() + ": " + peer.name() + " took writes as primary (its data"
                + " generation " + Long.toHexString(reply.currentGen()) + " is unknown here)" + both + ". Not resyncing,"
                + " nothing is overwritten. Decide which node's data survives: make that node primary, and on the"
                + " other move this volume's metadata file away before starting it as standby (its copy is then"
                + " compared in whole and overwritten)";
        }
        return null;
    }

    /** Blocks this primary changed that its peer may lack (dirty or in flight). */
    private long changedBlocks()
    {
        return dirtyMap.dirtyBlocks() + dirtyMap.inFlightBlocks();
    }

    /**
     * Applies the volume's {@code after-split-brain} policy: null when the standby's changes are to be
     * discarded, else why the link is refused. One-way mode can only overwrite the standby.
     */
    private String afterSplitBrain(final Hello reply)
    {
        final VolumeConfig.AfterSplitBrain policy = primary.config().afterSplitBrain();
        final MetadataFile meta = primary.metadata();
        switch (policy)
        {
            case DISCARD_LEAST_CHANGES:
                final long mine = changedBlocks();
                if (reply.changedBlocks() < mine)
                {
                    return null;
                }
                if (reply.changedBlocks() > mine)
                {
                    return "after-split-brain = \"discard-least-changes\" picks this primary (" + mine + " changed block(s)"
                        + " against " + reply.changedBlocks() + "): demote it and promote " + peer.name() + " to apply that";
                }
                return youngerPrimary(reply, meta, "discard-least-changes (a tie, so the younger primary)");
            case DISCARD_YOUNGER_PRIMARY:
                return youngerPrimary(reply, meta, "discard-younger-primary");
            default:
                return "after-split-brain = \"disconnect\"";
        }
    }

    private String youngerPrimary(final Hello reply, final MetadataFile meta, final String policy)
    {
        final long mine = meta.trackingSince();
        if (mine != 0 && reply.trackingSince() > mine)
        {
            return null;
        }
        return mine == 0 || reply.trackingSince() == 0
            ? "after-split-brain = \"" + policy + "\" cannot tell which primary is younger"
            : "after-split-brain = \"" + policy + "\" picks this primary (it did not start writing alone earlier): demote it and"
                + " promote " + peer.name() + " to apply that";
    }

    /**
     * Whether the dirty map alone holds everything the standby lacks: it holds our current generation, or
     * the one our dirty map has been tracking from, and it does not doubt its own copy.
     */
    private boolean dirtyMapSuffices(final Hello reply)
    {
        final MetadataFile meta = primary.metadata();
        return reply.disk() != MetadataFile.Disk.UNKNOWN.ordinal()
            && (reply.flags() & Hello.FLAG_UNCLEAN) == 0
            && reply.currentGen() != 0
            && (reply.currentGen() == meta.currentGen() || reply.currentGen() == meta.bitmapGen())
            && !meta.activityLog().damaged();
    }

    private void synchronize() throws LinkDownException, InterruptedException
    {
        log.stopLogging();
        upToDatePending = false;
        primary.comparing(true); // until the kind of sync is known (a whole-volume compare keeps it)
        state.replication(VolumeState.Replication.SYNCING);
        state.disk(VolumeState.Disk.SYNCING);
        if (discardStandbyChanges)
        {
            compareAll(SYNC_DISCARD_STANDBY_CHANGES);
        }
        else if (fullResyncRequested)
        {
            fullResyncRequested = false;
            Log.info(component, "full resync requested by the operator: comparing the whole volume by hash");
            compareAll(SYNC_FULL);
        }
        else if (dirtyMapSuffices(peerHello))
        {
            resyncFromDirtyMap();
        }
        else
        {
            Log.info(component, "standby " + peer.name() + " holds generation " + Long.toHexString(peerHello.currentGen())
                + ((peerHello.flags() & Hello.FLAG_UNCLEAN) != 0 ? " and says its copy is in doubt" : "")
                + "; the dirty map does not cover it: comparing the whole volume by hash");
            compareAll(SYNC_FULL);
        }
    }

    /** Resync of what the dirty map (and, after a crash, the activity log) says may differ. */
    private void resyncFromDirtyMap() throws LinkDownException, InterruptedException
    {
        final long startNanos = System.nanoTime();
        final long sentBefore = state.bytesSent();
        state.syncStarted("dirty-map");
        primary.comparing(false);
        sendSyncBegin(SYNC_FROM_DIRTY_MAP);
        final long[] extents = recoveredExtentsPending ? primary.metadata().activityLog().recoveredExtents() : new long[0];
        state.syncTotalBytes.set(dirtyMap.dirtyBlocks() * blockSize + extents.length * primary.metadata().activityLog().extentBytes());
        state.syncedBytes.set(0);
        Log.info(component, "resync from the dirty map: " + dirtyMap.dirtyBlocks() + " dirty block(s)"
            + (extents.length > 0 ? " and " + extents.length + " activity-log extent(s) to compare after a crash" : ""));
        countProgress = true;
        try
        {
            if (extents.length > 0)
            {
                compareExtents(extents);
            }
            catchUp();
        }
        finally
        {
            countProgress = false;
        }
        Log.info(component, String.format("resync done in %.1f s: %d bytes sent", (System.nanoTime() - startNanos) / 1e9,
            state.bytesSent() - sentBefore));
    }

    /** Compares the blocks of the given activity-log extents by hash; marks those that differ. */
    private void compareExtents(final long[] extents) throws LinkDownException, InterruptedException
    {
        final long extentBlocks = primary.metadata().activityLog().extentBytes() / blockSize;
        final long blocks = dirtyMap.blockCount();
        java.util.Arrays.sort(extents);
        for (final long extent : extents)
        {
            final long first = extent * extentBlocks;
            final long end = Math.min(blocks, first + extentBlocks);
            for (long start = first; start < end; start += WireProtocol.MAX_HASHES_PER_LIST)
            {
                final int count = (int)Math.min(WireProtocol.MAX_HASHES_PER_LIST, end - start);
                requestHashes(start, count);
                flush();
                final ByteBuf list = link.awaitHashList();
                try
                {
                    markDiffering(list, start, count);
                }
                finally
                {
                    list.release();
                }
                shipDirty(start, start + count);
            }
        }
    }

    /** Compares every block's hash with the standby's and sends the ones that differ, then drains the dirty map. */
    private void compareAll(final int kind) throws LinkDownException, InterruptedException
    {
        comparingAll = true; // a resync asked for meanwhile is this compare: it does not restart it
        try
        {
            compareAllNow(kind);
        }
        finally
        {
            comparingAll = false;
            primary.comparing(false);
        }
    }

    private void compareAllNow(final int kind) throws LinkDownException, InterruptedException
    {
        // A blank standby (an image it just created, all zeros) needs no hashes: send every non-zero block.
        final boolean blank = kind == SYNC_FULL && (peerHello.flags() & Hello.FLAG_BLANK) != 0;
        state.syncStarted(blank ? "full-copy" : "full-compare");
        if (blank)
        {
            Log.info(component, "standby " + peer.name() + " has a blank copy: sending every non-zero block without"
                + " comparing");
        }
        sendSyncBegin(kind);
        final long startNanos = System.nanoTime();
        final long sentBefore = state.bytesSent();
        final long blocks = dirtyMap.blockCount();
        final int batch = (int)Math.max(1, Math.min(WireProtocol.MAX_HASHES_PER_LIST, HASH_BATCH_BYTES / blockSize));
        state.syncTotalBytes.set(volume.size());
        state.syncedBytes.set(0);
        // A watched file is not scanned meanwhile: blocks not compared yet have no shipped hash, and a scan
        // would send them all instead of letting the compare find them equal.
        primary.comparing(true);
        long requested = 0;
        int outstanding = 0;
        for (long start = 0; start < blocks; start += batch)
        {
            checkStillWanted();
            if (blank)
            {
                final int count = (int)Math.min(batch, blocks - start);
                markNonZero(start, count);
                shipDirty(start, start + count);
                state.syncedBytes.set(Math.min(volume.size(), (start + count) * blockSize));
                continue;
            }
            while (outstanding < HASH_WINDOW && requested < blocks)
            {
                final int count = (int)Math.min(batch, blocks - requested);
                requestHashes(requested, count);
                requested += count;
                outstanding++;
            }
            flush();
            final ByteBuf list = link.awaitHashList();
            outstanding--;
            final int count = (int)Math.min(batch, blocks - start);
            try
            {
                markDiffering(list, start, count);
            }
            finally
            {
                list.release();
            }
            shipDirty(start, start + count);
            state.syncedBytes.set(Math.min(volume.size(), (start + count) * blockSize));
        }
        primary.comparing(false);
        catchUp();
        final double seconds = (System.nanoTime() - startNanos) / 1e9;
        Log.info(component, String.format("compare and sync done in %.1f s: %d bytes sent for a %d-byte volume",
            seconds, state.bytesSent() - sentBefore, volume.size()));
    }

    private void requestHashes(final long start, final int count) throws LinkDownException
    {
        final ByteBuf buf = alloc.buffer(WireProtocol.HEADER_BYTES + 12);
        final int frame = WireProtocol.beginFrame(buf, WireProtocol.TYPE_HASH_REQUEST);
        buf.writeLong(start);
        buf.writeInt(count);
        WireProtocol.endFrame(buf, frame, crc);
        send(buf);
    }

    /** Marks the blocks of {@code [start, start+count)} that hold anything but zeros. */
    private void markNonZero(final long start, final int count)
    {
        for (int i = 0; i < count; i++)
        {
            final long block = start + i;
            final long offset = block * blockSize;
            if (!ZeroBlocks.isZero(volume.windowFor(offset), volume.indexInWindow(offset), blockLength(block)))
            {
                dirtyMap.mark(block);
            }
            else if (shipped != null)
            {
                shipped.put(block, io.doppel.watch.WatchHashes.ZERO_BLOCK); // a blank standby holds zeros here
            }
        }
    }

    private void markDiffering(final ByteBuf list, final long start, final int count)
    {
        if (list.readableBytes() < 12)
        {
            throw new ProtocolException("HASH_LIST frame: truncated header");
        }
        final long listStart = list.readLong();
        final int listCount = list.readInt();
        if (listStart != start || listCount != count || list.readableBytes() != (long)count * WireProtocol.HASH_BYTES)
        {
            throw new ProtocolException("HASH_LIST frame: blocks " + listStart + "+" + listCount + " with "
                + list.readableBytes() + " hash bytes; expected blocks " + start + "+" + count);
        }
        for (int i = 0; i < count; i++)
        {
            final long block = start + i;
            final long offset = block * blockSize;
            final int length = blockLength(block);
            final long hi = list.readLong();
            final long lo = list.readLong();
            if (shipped != null)
            {
                compareWatched(block, offset, length, hi, lo);
                continue;
            }
            hasher.hashBlock(volume.windowFor(offset), volume.indexInWindow(offset), length, blockSize, zeroBlockHash);
            if (hasher.high() != hi || hasher.low() != lo)
            {
                dirtyMap.mark(block);
            }
        }
    }

    /**
     * A watched volume's block in a whole-volume compare: both hashes are taken from one private copy, so
     * a block found equal records exactly what the standby holds (a later scan then skips it instead of
     * sending the whole file once more).
     */
    private void compareWatched(final long block, final long offset, final int length, final long hi, final long lo)
    {
        compareCopy.clear();
        compareCopy.put(0, volume.windowFor(offset), volume.indexInWindow(offset), length);
        final HashValue128 local = BlockHash.ofBlock(compareCopy, 0, length, blockSize, zeroBlockHash);
        if (local.getMostSignificantBits() != hi || local.getLeastSignificantBits() != lo)
        {
            dirtyMap.mark(block);
        }
        else
        {
            shipped.put(block, io.doppel.watch.WatchHashes.hashOf(compareCopy, 0, length));
        }
    }

    /** Ships dirty blocks until none is left, then starts streaming the log (atomically with the check). */
    private void catchUp() throws LinkDownException
    {
        long lastUnlogged;
        while (true)
        {
            checkStillWanted();
            shipDirty(0, dirtyMap.blockCount());
            if (!settled.getAsBoolean())
            {
                // A watched file: the standby is a consistent copy only once a whole scan found the file
                // equal to what was shipped. Until then, no SYNC_DONE: it stays marked inconsistent.
                flush();
                maintainEpochs();
                LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(10));
                continue;
            }
            if ((lastUnlogged = log.startLogging()) >= 0)
            {
                break;
            }
        }
        syncDoneGen = log.loggingGeneration();
        syncDoneSeq = sendSyncDone(syncDoneGen);
        syncDoneUnacked = true;
        // Once SYNC_DONE is applied, the standby holds every write made before logging began.
        acks.onSent(syncDoneSeq, lastUnlogged);
        flush();
        state.replication(VolumeState.Replication.STREAMING);
    }

    /** Ends a sync in progress when the link closed, the daemon stops, or the operator paused or asked for a resync. */
    private void checkStillWanted() throws LinkDownException
    {
        if (!running || link.isClosed())
        {
            throw new LinkDownException(running ? link.closeReason() : "shutting down");
        }
        if (paused)
        {
            throw new LinkDownException("paused by the operator");
        }
        if (fullResyncRequested && !comparingAll)
        {
            throw new LinkDownException("full resync requested by the operator; reconnecting");
        }
    }

    /**
     * SYNC_BEGIN: seq u64 | kind u8 — {@link #SYNC_FROM_DIRTY_MAP}, {@link #SYNC_FULL} (a whole-volume compare:
     * the copy's generation is void until done) or {@link #SYNC_DISCARD_STANDBY_CHANGES} (a split-brain
     * policy: the standby saves its own changed blocks, then the whole volume is compared).
     */
    private void sendSyncBegin(final int kind) throws LinkDownException
    {
        final long mySeq = ++seq;
        final ByteBuf buf = alloc.buffer(WireProtocol.HEADER_BYTES + 9);
        final int frame = WireProtocol.beginFrame(buf, WireProtocol.TYPE_SYNC_BEGIN);
        buf.writeLong(mySeq);
        buf.writeByte(kind);
        WireProtocol.endFrame(buf, frame, crc);
        send(buf);
    }

    /** SYNC_DONE: seq u64 | the primary's current generation u64, which the standby adopts. */
    private long sendSyncDone(final long gen) throws LinkDownException
    {
        final long mySeq = ++seq;
        final ByteBuf buf = alloc.buffer(WireProtocol.HEADER_BYTES + 16);
        final int frame = WireProtocol.beginFrame(buf, WireProtocol.TYPE_SYNC_DONE);
        buf.writeLong(mySeq);
        buf.writeLong(gen);
        WireProtocol.endFrame(buf, frame, crc);
        send(buf);
        return mySeq;
    }

    /**
     * Compares one batch of blocks with the standby, in the replication stream's order. Our hash is taken
     * now; the standby hashes when it reaches the request, after every frame sent before it. A block dirty
     * before or after we hash it has a write on its way (writers mark before and after writing), so it is
     * skipped, not reported. A differing block is counted, and with repair sent again at once.
     */
    private void verifyBatch() throws LinkDownException, InterruptedException
    {
        final long blocks = dirtyMap.blockCount();
        final long start = verifyNext;
        final int count = (int)Math.min(VERIFY_BATCH_BLOCKS, blocks - start);
        verifySkip.clear();
        for (int i = 0; i < count; i++)
        {
            final long block = start + i;
            if (dirtyMap.isDirty(block))
            {
                verifySkip.set(i);
                continue;
            }
            final long offset = block * blockSize;
            hasher.hashBlock(volume.windowFor(offset), volume.indexInWindow(offset), blockLength(block), blockSize,
                zeroBlockHash);
            verifyHashes[2 * i] = hasher.high();
            verifyHashes[2 * i + 1] = hasher.low();
            if (dirtyMap.isDirty(block))
            {
                verifySkip.set(i);
            }
        }
        requestHashes(start, count);
        flush();
        final ByteBuf list = link.awaitHashList();
        try
        {
            if (list.readableBytes() != 12L + (long)count * WireProtocol.HASH_BYTES || list.readLong() != start
                || list.readInt() != count)
            {
                throw new ProtocolException("HASH_LIST frame does not answer the verify request for blocks " + start
                    + "+" + count);
            }
            for (int i = 0; i < count; i++)
            {
                final long hi = list.readLong();
                final long lo = list.readLong();
                if (verifySkip.get(i))
                {
                    state.verifySkipped.incrementAndGet();
                    continue;
                }
                if (hi != verifyHashes[2 * i] || lo != verifyHashes[2 * i + 1])
                {
                    final long block = start + i;
                    state.verifyDiffering(block * blockSize);
                    Log.warn(component, "verify: block " + block + " (offset " + block * blockSize + ") differs on "
                        + peer.name() + (verifyRepair ? "; sending it again" : ""));
                    if (verifyRepair)
                    {
                        // Not dirty (checked above), so no record will send it: claim and ship it now.
                        dirtyMap.mark(block);
                        shipDirty(block, block + 1);
                        state.verifyRepaired.incrementAndGet();
                    }
                }
            }
        }
        finally
        {
            list.release();
        }
        verifyNext = start + count;
        state.verifiedBytes.set(Math.min(volume.size(), verifyNext * blockSize));
        if (verifyNext >= blocks)
        {
            verifyNext = -1;
            state.verifyEnded("done");
            Log.info(component, "online verify done: " + state.verifyDifferingBlocks() + " block(s) differed, "
                + state.verifyRepairedBlocks() + " sent again, " + state.verifySkippedBlocks()
                + " skipped while being written");
        }
    }

    /** Stops replicating (the link is closed; writes are tracked in the dirty map) until {@link #resume}. */
    public void pause()
    {
        paused = true;
    }

    public void resume()
    {
        paused = false;
    }

    public boolean paused()
    {
        return paused;
    }

    /** Drops the link and, on the next connect, compares the whole volume by hash. */
    public void requestFullResync()
    {
        fullResyncRequested = true;
    }

    /** Starts an online verify when the volume next streams (false: one is already running or asked for). */
    public boolean requestVerify(final boolean repair)
    {
        if (verifyRequested != null || "running".equals(state.verifyState()))
        {
            return false;
        }
        verifyRequested = repair;
        return true;
    }

    /**
     * Settles the previous in-flight epoch once the standby acknowledged its last frame, and starts a new
     * epoch every so often, so a crash or a link drop re-sends only what was recently in flight.
     */
    private void maintainEpochs()
    {
        if (previousEpochBusy && state.ackedSeq() >= previousEpochEndSeq)
        {
            dirtyMap.settleEpoch(previousEpoch);
            previousEpochBusy = false;
        }
        if (!previousEpochBusy && (epochBytes >= EPOCH_BYTES || System.nanoTime() - epochStartNanos > EPOCH_NANOS))
        {
            epochBytes = 0;
            previousEpoch = dirtyMap.switchEpoch();
            previousEpochEndSeq = seq;
            previousEpochBusy = true;
            epochStartNanos = System.nanoTime();
        }
    }

    private void stream() throws LinkDownException, InterruptedException
    {
        while (running)
        {
            checkStillWanted();
            maintainEpochs();
            if (verifyRequested != null && verifyNext < 0)
            {
                verifyRepair = verifyRequested;
                verifyRequested = null;
                verifyNext = 0;
                state.verifyStarted(volume.size(), verifyRepair);
                Log.info(component, "online verify started" + (verifyRepair ? " (repairing differences)" : ""));
            }
            // A verify batch costs a round trip: run one when the log is empty, or every VERIFY_PACE under
            // load, so streaming keeps up (a batch per record would overflow the log).
            if (verifyNext >= 0 && state.disk() == VolumeState.Disk.UP_TO_DATE
                && (log.queuedBytes() == 0 || System.nanoTime() - lastVerifyNanos > VERIFY_PACE_NANOS))
            {
                verifyBatch();
                lastVerifyNanos = System.nanoTime();
            }
            if (syncDoneUnacked && state.ackedSeq() >= syncDoneSeq)
            {
                syncDoneUnacked = false;
                primary.metadata().peerInSync(syncDoneGen);
                if (recoveredExtentsPending)
                {
                    log.releaseRecoveredExtents();
                    primary.metadata().alRecoveryDone();
                    recoveredExtentsPending = false;
                }
                upToDatePending = true;
            }
            if (shipped != null && !syncDoneUnacked && state.disk() == VolumeState.Disk.OUTDATED)
            {
                upToDatePending = true; // an event that changed nothing: up to date again once a scan settles
            }
            if (upToDatePending)
            {
                reportUpToDate();
            }
            if (log.take(unflushed > 0 ? 0 : TimeUnit.MILLISECONDS.toNanos(50), recordWhere, recordData))
            {
                final ByteBuf record = recordData[0];
                recordData[0] = null;
                try
                {
                    if (record == null)
                    {
                        shipZeroes(recordWhere[0], recordWhere[1]);
                    }
                    else
                    {
                        shipRecord(recordWhere[0], record);
                    }
                }
                finally
                {
                    if (record != null)
                    {
                        record.release();
                    }
                    log.sent();
                }
                epochBytes += recordWhere[1];
                lastSentLsn = recordWhere[2];
                acks.onSent(seq, lastSentLsn);
                requestFlushIfWanted();
                continue;
            }
            requestFlushIfWanted();
            flush();
            if (state.ackedSeq() >= seq && dirtyMap.inFlightBlocks() > 0)
            {
                // Idle and every frame acknowledged: nothing is in flight any more (a clean stop stays clean).
                dirtyMap.settleEpoch(0);
                dirtyMap.settleEpoch(1);
                previousEpochBusy = false;
            }
            if (!log.isLogging())
            {
                upToDatePending = false;
                if (shipped != null)
                {
                    Log.debug(component, "watched file changed: shipping " + dirtyMap.dirtyBlocks()
                        + " changed block(s); standby is inconsistent until done");
                }
                else
                {
                    Log.warn(component, "replication log overflowed (more than "
                        + primary.config().logBytes() + " bytes unsent); catching up from the dirty map, standby is"
                        + " inconsistent until done");
                }
                state.replication(VolumeState.Replication.BEHIND);
                state.disk(VolumeState.Disk.SYNCING);
                sendSyncBegin(SYNC_FROM_DIRTY_MAP);
                catchUp();
            }
        }
    }

    /**
     * Reports the standby up to date, under the log's lock (an overflow in between keeps it at behind or
     * syncing), and for a watched file only while the last whole scan found nothing changing.
     */
    private void reportUpToDate()
    {
        final boolean[] done = new boolean[1];
        log.ifLogging(() ->
        {
            if (settled.getAsBoolean())
            {
                state.disk(VolumeState.Disk.UP_TO_DATE);
                done[0] = true;
            }
        });
        if (done[0])
        {
            upToDatePending = false;
            Log.info(component, "standby " + peer.name() + " is up to date; streaming");
        }
    }

    /** Claims and sends the dirty runs in {@code [from, to)}, in offset order. */
    private void shipDirty(final long from, final long to) throws LinkDownException
    {
        long block = from;
        while (true)
        {
            final long start = dirtyMap.claimRun(block, to, frameBlocks, runLength);
            if (start < 0)
            {
                return;
            }
            final long offset = start * blockSize;
            final long end = Math.min(volume.size(), (start + runLength[0]) * blockSize);
            shipVolumeRange(offset, end - offset);
            block = start + runLength[0];
            epochBytes += end - offset;
            if (countProgress)
            {
                state.syncedBytes.addAndGet(end - offset);
            }
            maintainEpochs();
        }
    }

    /**
     * Sends a block-aligned range of the mapped image, through a private copy of at most one payload:
     * runs of zero blocks as ZERO frames, runs of data blocks coalesced into DATA frames (never across a
     * window or past the payload limit).
     */
    private void shipVolumeRange(final long offset, final long length) throws LinkDownException
    {
        long pos = offset;
        final long end = offset + length;
        while (pos < end)
        {
            final ByteBuffer mapped = volume.windowFor(pos);
            final int mappedIndex = volume.indexInWindow(pos);
            final int n = (int)Math.min(Math.min(end - pos, WireProtocol.MAX_PAYLOAD_BYTES),
                mapped.capacity() - mappedIndex);
            snapshot.put(0, mapped, mappedIndex, n);
            if (shipped != null)
            {
                recordShipped(pos, n);
            }
            final ByteBuffer window = snapshot;
            final int index = 0;
            int i = 0;
            while (i < n)
            {
                final boolean zero = ZeroBlocks.isZero(window, index + i, Math.min(blockSize, n - i));
                final int segment = i;
                i += Math.min(blockSize, n - i);
                while (i < n && ZeroBlocks.isZero(window, index + i, Math.min(blockSize, n - i)) == zero)
                {
                    i += Math.min(blockSize, n - i);
                }
                final long segmentOffset = pos + segment;
                final int segmentLength = i - segment;
                if (zero)
                {
                    state.zeroBytes.addAndGet(segmentLength);
                    send(encoder.encodeZero(alloc, ++seq, segmentOffset, segmentLength));
                }
                else
                {
                    send(encodeData(segmentOffset, window, index + segment, segmentLength));
                }
                state.blocksSent.addAndGet((segmentLength + blockSize - 1) / blockSize);
            }
            pos += n;
        }
    }

    /** A watched volume: the hash of each block of the snapshot about to be sent is what the standby gets. */
    private void recordShipped(final long offset, final int n)
    {
        long block = offset / blockSize;
        for (int i = 0; i < n; i += blockSize, block++)
        {
            shipped.put(block, io.doppel.watch.WatchHashes.hashOf(snapshot, i, Math.min(blockSize, n - i)));
        }
    }

    /** Sends one logged write, split at the payload limit; zero writes travel as ZERO frames. */
    private void shipRecord(final long offset, final ByteBuf record) throws LinkDownException
    {
        // The record's own NIO view (no allocation per record), little-endian like the volume's windows so
        // XXH3 reads its words without swapping bytes.
        final ByteBuffer data = (record.nioBufferCount() == 1
            ? record.internalNioBuffer(record.readerIndex(), record.readableBytes())
            : record.nioBuffer()).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        final int base = data.position();
        final int length = data.remaining();
        int done = 0;
        while (done < length)
        {
            final int n = Math.min(length - done, WireProtocol.MAX_PAYLOAD_BYTES);
            if (ZeroBlocks.isZero(data, base + done, n))
            {
                state.zeroBytes.addAndGet(n);
                send(encoder.encodeZero(alloc, ++seq, offset + done, n));
            }
            else
            {
                send(encodeData(offset + done, data, base + done, n));
            }
            state.blocksSent.addAndGet((n + blockSize - 1) / blockSize);
            done += n;
        }
    }

    /**
     * Sends a FLUSH when someone waits for a write to be durable on the standby and every write up to
     * it has been handed to the link (records go out in lsn order, so a later pass catches up).
     */
    private void requestFlushIfWanted() throws LinkDownException
    {
        final long wanted = acks.flushWanted();
        if (wanted > flushRequestedLsn && lastSentLsn > flushRequestedLsn)
        {
            final long covered = lastSentLsn;
            final long flushSeq = sendControl(WireProtocol.TYPE_FLUSH);
            acks.onFlushSent(flushSeq, covered);
            flushRequestedLsn = covered;
            flush();
        }
    }

    /** Sends a logged zero write as ZERO frames. */
    private void shipZeroes(final long offset, final long length) throws LinkDownException
    {
        state.zeroBytes.addAndGet(length);
        state.blocksSent.addAndGet((length + blockSize - 1) / blockSize);
        send(encoder.encodeZero(alloc, ++seq, offset, length));
    }

    private ByteBuf encodeData(final long offset, final ByteBuffer src, final int index, final int length)
    {
        final Compression codec = primary.config().compression();
        if (codec != encoder.compression())
        {
            encoder.compression(codec); // a live reload changed it: from the next block on
        }
        final long rawBefore = encoder.rawBytes();
        final long payloadBefore = encoder.payloadBytes();
        final ByteBuf frame = encoder.encode(alloc, ++seq, offset, src, index, length);
        state.compressionSavedBytes.addAndGet((encoder.rawBytes() - rawBefore) - (encoder.payloadBytes() - payloadBefore));
        return frame;
    }

    /** A frame with only a sequence number (SYNC_BEGIN, SYNC_DONE); returns that number. */
    private long sendControl(final int type) throws LinkDownException
    {
        final long mySeq = ++seq;
        send(WireProtocol.seqFrame(alloc, type, mySeq, crc));
        return mySeq;
    }

    /**
     * Queues a frame on the link, waiting (on this thread, never the event loop) while the channel is
     * above its high watermark: flow control by writability, never by an unbounded queue.
     */
    private void send(final ByteBuf frame) throws LinkDownException
    {
        if (!channel.isWritable())
        {
            state.linkStalls.incrementAndGet();
            flush();
            while (!channel.isWritable())
            {
                if (!channel.isActive() || !running || Thread.currentThread().isInterrupted())
                {
                    frame.release();
                    throw new LinkDownException(channel.isActive() ? "shutting down" : link.closeReason());
                }
                LockSupport.parkNanos(100_000);
            }
        }
        if (!channel.isActive())
        {
            frame.release();
            throw new LinkDownException(link.closeReason());
        }
        state.bytesSent.addAndGet(frame.readableBytes());
        state.sentSeq.set(seq);
        state.sampleSend(seq);
        if (batch == null)
        {
            batch = alloc.compositeDirectBuffer(FLUSH_EVERY_FRAMES);
        }
        batch.addComponent(true, frame);
        if (++unflushed >= FLUSH_EVERY_FRAMES || batch.readableBytes() >= BATCH_BYTES)
        {
            flush();
        }
    }

    private void flush()
    {
        if (unflushed > 0 && channel != null)
        {
            final CompositeByteBuf frames = batch;
            batch = null;
            unflushed = 0;
            channel.writeAndFlush(frames, channel.voidPromise());
        }
    }

    private int blockLength(final long block)
    {
        return (int)Math.min(blockSize, volume.size() - block * blockSize);
    }

    private void disconnect()
    {
        log.stopLogging();
        primary.comparing(false);
        // Whatever the standby did not acknowledge must be sent again on the next link.
        dirtyMap.returnInFlight();
        syncDoneUnacked = false;
        if (verifyNext >= 0)
        {
            verifyNext = -1;
            state.verifyEnded("aborted: the link was closed (" + (paused ? "paused" : running ? "link down or resync"
                : "shutting down") + "); run verify again");
        }
        previousEpochBusy = false;
        state.connected(false);
        if (state.disk() == VolumeState.Disk.UP_TO_DATE)
        {
            state.disk(VolumeState.Disk.OUTDATED);
        }
        else if (state.disk() == VolumeState.Disk.SYNCING)
        {
            state.disk(VolumeState.Disk.INCONSISTENT);
        }
        unflushed = 0;
        if (batch != null)
        {
            batch.release(); // frames the link never took: their blocks are dirty again
            batch = null;
        }
        if (channel != null)
        {
            channel.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
            channel = null;
        }
        if (link != null)
        {
            link.releaseQueued();
        }
    }

    private static void sleep(final long millis)
    {
        try
        {
            Thread.sleep(millis);
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() throws InterruptedException
    {
        running = false;
        thread.interrupt();
        thread.join(5_000);
    }
}
