package io.doppel.replication;

import io.doppel.config.NodeConfig;
import io.doppel.config.PeerConfig;
import io.doppel.log.Log;
import io.doppel.net.Hello;
import io.doppel.net.LinkSecurity;
import io.doppel.net.ProtocolException;
import io.doppel.net.PskAuth;
import io.doppel.net.Transport;
import io.doppel.net.WireProtocol;
import io.doppel.pipeline.BlockApplier;
import io.doppel.pipeline.BlockEncoder;
import io.doppel.storage.DirtyMap;
import io.doppel.storage.DiskWriteException;
import io.doppel.storage.Volume;
import io.doppel.twoway.BlockResolver;
import io.doppel.twoway.TwoWayVolume;
import io.doppel.twoway.VersionVectorFile;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.DecoderException;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.timeout.IdleState;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.util.concurrent.EventExecutorGroup;
import io.netty.util.concurrent.FastThreadLocalThread;

import java.nio.ByteBuffer;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;
import java.util.zip.CRC32C;

/**
 * The link of one two-way volume: a single connection that carries block versions both ways. The node whose
 * name sorts first dials the other's {@code [node].listen}; the other accepts (through {@link PeerServer}),
 * so a pair never holds two connections for one volume.
 *
 * <p>Each side sends what it owes the peer — the blocks its dirty map marks, which survive restarts and
 * link losses — each block as a VERSION frame (vector and stamp) followed by the usual DATA or ZERO frame.
 * The receiver {@linkplain TwoWayVolume#applyRemote resolves} each version before writing, and acknowledges
 * what it applied once that is on its stable storage; acknowledged blocks stop being owed. After a partition
 * the sides therefore exchange only their dirty blocks, never the whole volume, and both end with the same
 * bytes, vectors and stamps.
 */
public final class TwoWayLink implements AutoCloseable
{
    /** Blocks claimed from the dirty map, and sent as one VERSION + DATA pair, at a time (at most 1 MiB). */
    private static final int RUN_BLOCKS = 64;
    /** Blocks sent in one dirty-map epoch before it is switched and settled by an acknowledgement. */
    private static final int EPOCH_BLOCKS = 1024;
    /** Bytes of blocks sent and not yet acknowledged beyond which the sender waits. */
    private static final long MAX_UNACKED_BYTES = 64L << 20;
    /** How long a receiver gathers applied blocks before it forces them to disk and says so (FLUSHED). */
    private static final long FLUSH_DELAY_MS = 200;
    /** VERSION body: offset u64, count u16, slots u8, reserved u8; then per block a stamp u64 and a vector. */
    private static final int VERSION_FIXED_BYTES = 8 + 2 + 1 + 1;

    private final TwoWayVolume tw;
    private final NodeConfig node;
    private final PeerConfig peer;
    private final Transport transport;
    private final LinkSecurity security;
    private final EventExecutorGroup applyGroup;
    private final SslContext tls;
    private final boolean dialer;
    private final String component;
    private final VolumeState state;
    private final Volume volume;
    private final DirtyMap dirty;
    private final VersionVectorFile versions;
    private final BlockEncoder encoder;
    private final CRC32C crc = new CRC32C();
    private final ByteBufAllocator alloc = PooledByteBufAllocator.DEFAULT;
    private final int[] vector;
    private final int[] runLength = new int[1];
    /** Blocks per run: {@link #RUN_BLOCKS}, fewer when blocks are large (one DATA frame holds at most 1 MiB). */
    private final int runBlocks;
    /** Bytes of each volume window: a run never crosses one (the encoder reads one window). */
    private final long windowBytes;
    private final int blockSize;
    private final int blockShift;
    private final long blocks;
    private final long maxUnackedFrames;
    private final Thread thread;
    private volatile boolean running = true;
    private volatile Channel accepted;
    private volatile Channel current;
    /** The peer has applied every block up to here (flow control), and has it on stable storage (owed no more). */
    private volatile long ackedSeq;
    private volatile long durableSeq;
    private volatile boolean sleeping;
    private long seq;

    public TwoWayLink(final TwoWayVolume tw, final NodeConfig node, final PeerConfig peer, final Transport transport,
        final LinkSecurity security, final EventExecutorGroup applyGroup)
    {
        this.tw = tw;
        this.node = node;
        this.peer = peer;
        this.transport = transport;
        this.security = security;
        this.applyGroup = applyGroup;
        try
        {
            this.tls = security.tls() ? security.clientContext(peer) : null;
        }
        catch (final javax.net.ssl.SSLException e)
        {
            throw new IllegalStateException("cannot build a TLS context for peer " + peer.name() + ": " + e, e);
        }
        this.dialer = node.name().compareTo(peer.name()) < 0;
        this.component = node.name() + "/" + tw.name();
        this.state = tw.state();
        this.volume = tw.volume();
        this.dirty = tw.metadata().dirtyMap();
        this.versions = tw.versions();
        this.encoder = new BlockEncoder(tw.config().compression());
        this.vector = new int[versions.slots()];
        this.blockSize = tw.config().blockSize();
        this.blockShift = Integer.numberOfTrailingZeros(blockSize);
        this.blocks = versions.blocks();
        this.runBlocks = Math.max(1, Math.min(RUN_BLOCKS, WireProtocol.MAX_PAYLOAD_BYTES / blockSize));
        this.maxUnackedFrames = Math.max(16, MAX_UNACKED_BYTES / ((long)runBlocks * blockSize));
        this.windowBytes = volume.windowFor(0).capacity();
        this.thread = new FastThreadLocalThread(this::run, "doppel-twoway-" + tw.name());
        this.thread.setDaemon(true);
        tw.onWrite(this::wake);
    }

    public void start()
    {
        state.replication(VolumeState.Replication.CONNECTING);
        state.disk(tw.nothingOwed() ? VolumeState.Disk.UP_TO_DATE : VolumeState.Disk.OUTDATED);
        thread.start();
    }

    public String name()
    {
        return tw.name();
    }

    public TwoWayVolume volume()
    {
        return tw;
    }

    /** Whether this node dials (its name sorts before the peer's) rather than accepts. */
    public boolean dials()
    {
        return dialer;
    }

    private void wake()
    {
        if (sleeping)
        {
            LockSupport.unpark(thread);
        }
    }

    private void run()
    {
        long backoff = ReplicationSender.MIN_BACKOFF_MS;
        String lastProblem = "";
        try
        {
            while (running)
            {
                Channel ch = null;
                long wait = 0;
                try
                {
                    ch = dialer ? dial() : awaitAccepted();
                    if (ch == null)
                    {
                        continue;
                    }
                    backoff = ReplicationSender.MIN_BACKOFF_MS;
                    lastProblem = "";
                    state.lastError("");
                    session(ch);
                    wait = dialer ? backoff : 0;
                }
                catch (final InterruptedException e)
                {
                    break;
                }
                catch (final PeerRejectedException e)
                {
                    e.countIn(security);
                    lastProblem = report(e.getMessage(), lastProblem, true);
                    wait = ReplicationSender.REJECTED_BACKOFF_MS;
                }
                catch (final LinkDownException e)
                {
                    lastProblem = report(e.getMessage(), lastProblem, false);
                    wait = backoff;
                }
                catch (final RuntimeException | Error e)
                {
                    lastProblem = report("unexpected " + e, lastProblem, true);
                    wait = backoff;
                }
                finally
                {
                    if (ch != null)
                    {
                        linkLost(ch);
                    }
                }
                if (running && wait > 0)
                {
                    Thread.sleep(wait);
                    backoff = Math.min(backoff * 2, ReplicationSender.MAX_BACKOFF_MS);
                }
            }
        }
        catch (final InterruptedException e)
        {
            // closing
        }
        finally
        {
            encoder.close();
        }
    }

    private String report(final String problem, final String lastProblem, final boolean error)
    {
        state.lastError(problem);
        if (!problem.equals(lastProblem))
        {
            final String line = "two-way link with " + peer.name() + ": " + problem;
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

    private Channel dial() throws LinkDownException, PeerRejectedException, InterruptedException
    {
        final ClientHandler handler = new ClientHandler();
        final Channel ch = LinkDialer.connect(transport, node, peer, tls, applyGroup, handler);
        try
        {
            LinkAuthClient.authenticate(ch, tls != null, node, peer, security, handler::awaitAuthReply, crc);
            final ByteBuf hello = alloc.buffer();
            myHello().encode(hello, WireProtocol.TYPE_HELLO, crc);
            ch.writeAndFlush(hello);
            handler.awaitHello(node.heartbeatTimeoutMillis());
            return ch;
        }
        catch (final LinkDownException | PeerRejectedException | InterruptedException | RuntimeException e)
        {
            ch.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
            throw e;
        }
    }

    private Hello myHello()
    {
        return new Hello(WireProtocol.MAGIC, WireProtocol.VERSION_TWO_WAY, WireProtocol.VERSION_MAX,
            WireProtocol.ROLE_TWO_WAY, volume.size(), blockSize, node.name(), peer.name(), tw.name());
    }

    /** What is wrong with the peer's hello (or HELLO_OK) for this volume, or null when it may attach. */
    String refusal(final Hello hello)
    {
        final String why = hello.mismatch(node.name(), peer.name(), WireProtocol.ROLE_TWO_WAY, volume.size(), blockSize);
        if (why != null)
        {
            return why;
        }
        if (hello.versionMax() < WireProtocol.VERSION_TWO_WAY)
        {
            return "volume " + tw.name() + ": peer \"" + hello.node() + "\" speaks protocol up to v" + hello.versionMax()
                + "; two-way links need v" + WireProtocol.VERSION_TWO_WAY;
        }
        return hello.volume().equals(tw.name()) ? null : "peer answered for volume " + hello.volume();
    }

    private Channel awaitAccepted() throws InterruptedException
    {
        final Channel ch = accepted;
        if (ch != null && ch.isActive() && ch != current)
        {
            return ch;
        }
        sleeping = true;
        LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(100));
        sleeping = false;
        if (Thread.interrupted())
        {
            throw new InterruptedException();
        }
        return null;
    }

    /**
     * The accepting side: the peer's HELLO for this volume passed its checks on {@code ch}. Replies HELLO_OK
     * (before the sender may write on it) and returns the receiver for the frames that follow. An older link,
     * which may be dead without either side knowing, is closed.
     */
    Receiver accept(final ChannelHandlerContext ctx, final Hello hello)
    {
        final Channel ch = ctx.channel();
        final Receiver receiver = new Receiver(ch);
        final ByteBuf ok = ctx.alloc().buffer();
        new Hello(WireProtocol.MAGIC, WireProtocol.VERSION_TWO_WAY, WireProtocol.VERSION_MAX, WireProtocol.ROLE_TWO_WAY,
            volume.size(), blockSize, node.name(), hello.node(), tw.name()).encode(ok, WireProtocol.TYPE_HELLO_OK,
                receiver.crc);
        ctx.writeAndFlush(ok);
        final Channel old = accepted;
        accepted = ch;
        if (old != null && old != ch)
        {
            old.close();
        }
        LockSupport.unpark(thread);
        return receiver;
    }

    /** One connection's life on the sender thread: sends what is owed until the link drops or the node stops. */
    private void session(final Channel ch) throws InterruptedException
    {
        current = ch;
        seq = 0;
        ackedSeq = 0;
        durableSeq = 0;
        state.sentSeq.set(0); // numbered per connection
        state.ackedSeq.set(0);
        int pendingEpoch = -1;
        long pendingSeq = 0;
        long epochBlocks = 0;
        long cursor = 0;
        long lastClockPersist = System.nanoTime();
        state.connected(true);
        state.connects.incrementAndGet();
        state.replication(VolumeState.Replication.STREAMING);
        Log.info(component, "two-way link with " + peer.name() + " up (" + (dialer ? "dialled " : "accepted from ")
            + ch.remoteAddress() + ", " + (ch.pipeline().get("tls") != null ? "mutual TLS" : peer.psk() != null
                ? "PSK" : "plaintext") + "); sending " + dirty.dirtyBlocks() + " owed block(s)");
        while (running && ch.isActive())
        {
            if (pendingEpoch >= 0 && durableSeq >= pendingSeq)
            {
                dirty.settleEpoch(pendingEpoch);
                pendingEpoch = -1;
            }
            if (seq - ackedSeq >= maxUnackedFrames || !ch.isWritable())
            {
                state.linkStalls.incrementAndGet();
                pause(1);
                continue;
            }
            final long next = dirty.nextDirty(cursor);
            final long start = next < 0 ? -1 : dirty.claimRun(next, windowEnd(next), runBlocks, runLength);
            if (start < 0)
            {
                if (cursor > 0)
                {
                    cursor = 0;
                    continue;
                }
                if (epochBlocks > 0 && pendingEpoch < 0)
                {
                    pendingEpoch = dirty.switchEpoch();
                    pendingSeq = seq;
                    epochBlocks = 0;
                }
                state.disk(tw.nothingOwed() ? VolumeState.Disk.UP_TO_DATE : VolumeState.Disk.SYNCING);
                if (System.nanoTime() - lastClockPersist > TimeUnit.SECONDS.toNanos(1))
                {
                    versions.persistHighStamp(tw.clock().high()); // a restart never issues stamps below these
                    lastClockPersist = System.nanoTime();
                }
                pause(pendingEpoch >= 0 ? 1 : 20);
                continue;
            }
            state.disk(VolumeState.Disk.SYNCING);
            final int n = runLength[0];
            send(ch, start, n);
            cursor = start + n;
            epochBlocks += n;
            if (epochBlocks >= EPOCH_BLOCKS && pendingEpoch < 0)
            {
                pendingEpoch = dirty.switchEpoch();
                pendingSeq = seq;
                epochBlocks = 0;
            }
        }
    }

    private void pause(final long millis) throws InterruptedException
    {
        sleeping = true;
        LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(millis));
        sleeping = false;
        if (Thread.interrupted())
        {
            throw new InterruptedException();
        }
    }

    /** The block after the last one of the volume window holding {@code block}: runs stop there. */
    private long windowEnd(final long block)
    {
        final long offset = block << blockShift;
        return Math.min(blocks, ((offset / windowBytes + 1) * windowBytes) >>> blockShift);
    }

    /**
     * Blocks {@code [first, first + n)}: their vectors, stamps and bytes, read together under their stripes, as
     * one VERSION frame and one DATA or ZERO frame, written to the link at once (a write from this thread is a
     * task on the event loop; per block, those cost more than the blocks).
     */
    private void send(final Channel ch, final long first, final int n)
    {
        final long offset = first << blockShift;
        final int length = (int)Math.min((long)n * blockSize, volume.size() - offset);
        final ByteBuf version = alloc.directBuffer(WireProtocol.HEADER_BYTES + VERSION_FIXED_BYTES
            + n * (8 + 4 * vector.length));
        final ByteBuf data;
        tw.lockBlocks(first, first + n);
        try
        {
            final int begin = WireProtocol.beginFrame(version, WireProtocol.TYPE_VERSION);
            version.writeLong(offset);
            version.writeShort(n);
            version.writeByte(vector.length);
            version.writeZero(1);
            for (long block = first; block < first + n; block++)
            {
                version.writeLong(versions.read(block, vector));
                for (final int v : vector)
                {
                    version.writeInt(v);
                }
            }
            WireProtocol.endFrame(version, begin, crc);
            data = encoder.encode(alloc, ++seq, offset, volume.windowFor(offset), volume.indexInWindow(offset), length);
        }
        catch (final RuntimeException | Error e)
        {
            version.release();
            throw e;
        }
        finally
        {
            tw.unlockBlocks(first, first + n);
        }
        state.bytesSent.addAndGet(version.readableBytes() + data.readableBytes());
        state.blocksSent.addAndGet(n);
        state.sentSeq.set(seq);
        tw.status().sentBlocks.addAndGet(n);
        final io.netty.buffer.CompositeByteBuf pair = alloc.compositeDirectBuffer(2);
        pair.addComponent(true, version);
        pair.addComponent(true, data);
        ch.writeAndFlush(pair, ch.voidPromise());
    }

    /** The link {@code ch} dropped: what it did not acknowledge is owed again. Sender thread. */
    private void linkLost(final Channel ch)
    {
        ch.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
        if (current == ch)
        {
            current = null;
        }
        dirty.returnInFlight();
        state.connected(false);
        state.replication(VolumeState.Replication.CONNECTING);
        state.disk(tw.nothingOwed() ? VolumeState.Disk.UP_TO_DATE : VolumeState.Disk.OUTDATED);
        Log.info(component, "two-way link with " + peer.name() + " down; " + dirty.dirtyBlocks()
            + " block(s) owed to it, sent when it is back");
    }

    private void acked(final Channel ch, final long value)
    {
        if (ch == current && value > ackedSeq)
        {
            ackedSeq = value;
            state.ackedSeq.set(value);
        }
    }

    private void flushed(final Channel ch, final long value)
    {
        if (ch == current && value > durableSeq)
        {
            durableSeq = value;
            if (sleeping)
            {
                LockSupport.unpark(thread); // an epoch may settle now
            }
        }
    }

    @Override
    public void close() throws InterruptedException
    {
        running = false;
        thread.interrupt();
        thread.join(5_000);
        final Channel ch = accepted;
        if (ch != null)
        {
            ch.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
        }
    }

    /**
     * Applies the peer's frames of one connection, on the link's apply executor: a VERSION frame, then the
     * DATA or ZERO frame with that block's bytes, resolved and written by {@link TwoWayVolume#applyRemote}.
     * Answers ACK with the last DATA/ZERO sequence number applied, and FLUSHED with the last one forced to
     * stable storage.
     */
    final class Receiver
    {
        private final Channel ch;
        private final CRC32C crc = new CRC32C();
        private final BlockApplier applier = new BlockApplier(volume);
        private final int[] incoming = new int[vector.length];
        /** The VERSION frame's entries: per block a stamp, and its vector at {@code slots * i}. */
        private final long[] stamps = new long[WireProtocol.MAX_PAYLOAD_BYTES / blockSize + 1];
        private final int[] vectors = new int[stamps.length * vector.length];
        private int versionCount;
        private final ByteBuffer zeros = ByteBuffer.allocateDirect(blockSize);
        private boolean hasVersion;
        private long versionOffset;
        private long versionStamp;
        private long appliedSeq;
        private long ackSent;
        private long flushedSent;
        private boolean flushScheduled;
        private boolean failed;

        Receiver(final Channel ch)
        {
            this.ch = ch;
        }

        void onFrame(final ChannelHandlerContext ctx, final ByteBuf frame, final int type)
        {
            if (failed)
            {
                return;
            }
            state.bytesReceived.addAndGet(WireProtocol.wireBytes(frame));
            switch (type)
            {
                case WireProtocol.TYPE_VERSION:
                    onVersion(frame);
                    break;
                case WireProtocol.TYPE_DATA:
                    requireVersion(type);
                    apply(applier.decodeData(frame), false);
                    break;
                case WireProtocol.TYPE_ZERO:
                    requireVersion(type);
                    applier.decodeZero(frame);
                    apply(null, true);
                    break;
                case WireProtocol.TYPE_ACK:
                    WireProtocol.requireBody(frame, 8, type);
                    acked(ch, frame.readLong());
                    break;
                case WireProtocol.TYPE_FLUSHED:
                    WireProtocol.requireBody(frame, 8, type);
                    flushed(ch, frame.readLong());
                    break;
                case WireProtocol.TYPE_PING:
                    break;
                case WireProtocol.TYPE_REJECT:
                    failed = true;
                    Log.error(component, "peer " + peer.name() + " refused the two-way link: " + Hello.decodeReject(frame));
                    ctx.close();
                    break;
                default:
                    throw new ProtocolException("unexpected " + WireProtocol.typeName(type) + " frame on a two-way link");
            }
        }

        private void requireVersion(final int type)
        {
            if (!hasVersion)
            {
                throw new ProtocolException(WireProtocol.typeName(type) + " frame without a VERSION frame before it on"
                    + " a two-way link");
            }
        }

        private void onVersion(final ByteBuf frame)
        {
            if (hasVersion)
            {
                throw new ProtocolException("VERSION frame after a VERSION frame (expected DATA or ZERO in between)");
            }
            WireProtocol.requireBody(frame, VERSION_FIXED_BYTES, WireProtocol.TYPE_VERSION);
            versionOffset = frame.readLong();
            final int count = frame.readUnsignedShort();
            final int slots = frame.readUnsignedByte();
            frame.skipBytes(1);
            if (slots != incoming.length)
            {
                throw new ProtocolException("VERSION frame with " + slots + " node slot(s) (expected " + incoming.length
                    + ": this volume's nodes are " + versions.nodes() + ")");
            }
            if (versionOffset < 0 || versionOffset >= volume.size() || (versionOffset & (blockSize - 1)) != 0)
            {
                throw new ProtocolException("VERSION frame for offset " + versionOffset + " (expected a multiple of "
                    + blockSize + " below " + volume.size() + ")");
            }
            final long left = (volume.size() - versionOffset + blockSize - 1) >>> blockShift;
            if (count < 1 || count > stamps.length - 1 || count > left)
            {
                throw new ProtocolException("VERSION frame for " + count + " block(s) at offset " + versionOffset
                    + " (expected 1-" + Math.min(stamps.length - 1, left) + ")");
            }
            WireProtocol.requireBody(frame, count * (8 + 4 * slots), WireProtocol.TYPE_VERSION);
            for (int i = 0; i < count; i++)
            {
                stamps[i] = frame.readLong();
                for (int k = 0; k < slots; k++)
                {
                    vectors[i * slots + k] = frame.readInt();
                }
            }
            versionCount = count;
            hasVersion = true;
        }

        /** Resolves and writes each block of the run the VERSION frame announced; {@code bytes} holds them all. */
        private void apply(final ByteBuffer bytes, final boolean zero)
        {
            final long expected = Math.min((long)versionCount * blockSize, volume.size() - versionOffset);
            final long length = zero ? applier.lastLength() : bytes.remaining();
            if (applier.lastOffset() != versionOffset || length != expected)
            {
                throw new ProtocolException("block run at offset " + applier.lastOffset() + ", " + length
                    + " bytes, after a VERSION frame for " + versionCount + " block(s) at offset " + versionOffset
                    + " (expected the same offset and " + expected + " bytes)");
            }
            final int slots = incoming.length;
            for (int i = 0; i < versionCount; i++)
            {
                final long offset = versionOffset + (long)i * blockSize;
                final int n = (int)Math.min(blockSize, volume.size() - offset);
                System.arraycopy(vectors, i * slots, incoming, 0, slots);
                final ByteBuffer block = zero ? zeros.clear().limit(n) : bytes.limit(i * blockSize + n).position(i * blockSize);
                final BlockResolver.Outcome outcome = tw.applyRemote(offset >>> blockShift, offset, incoming, stamps[i],
                    block);
                if (outcome == BlockResolver.Outcome.CONFLICT_APPLY || outcome == BlockResolver.Outcome.CONFLICT_KEEP)
                {
                    Log.warn(component, "conflict at offset " + offset + ": both nodes wrote the block concurrently; the "
                        + (outcome == BlockResolver.Outcome.CONFLICT_APPLY ? "peer's" : "local") + " write is later and"
                        + " wins, the other is in " + tw.conflictLog());
                }
            }
            hasVersion = false;
            appliedSeq = applier.lastSeq();
            state.blocksReceived.addAndGet(versionCount);
            tw.status().receivedBlocks.addAndGet(versionCount);
        }

        /**
         * ACK right away what was applied (the peer's flow control), and FLUSHED, within {@value #FLUSH_DELAY_MS}
         * ms, what is forced to stable storage: only that stops being owed by the peer, so a crash of this
         * machine cannot lose a block the peer no longer has marked.
         */
        void readComplete(final ChannelHandlerContext ctx)
        {
            if (failed || appliedSeq == ackSent)
            {
                return;
            }
            ctx.writeAndFlush(WireProtocol.seqFrame(ctx.alloc(), WireProtocol.TYPE_ACK, appliedSeq, crc), ctx.voidPromise());
            ackSent = appliedSeq;
            if (!flushScheduled)
            {
                flushScheduled = true;
                ctx.executor().schedule(() -> flushAndSay(ctx), FLUSH_DELAY_MS, TimeUnit.MILLISECONDS);
            }
        }

        private void flushAndSay(final ChannelHandlerContext ctx)
        {
            flushScheduled = false;
            if (failed || !ch.isActive() || appliedSeq == flushedSent)
            {
                return;
            }
            final long upTo = appliedSeq;
            try
            {
                volume.flush();
                versions.force();
            }
            catch (final DiskWriteException e)
            {
                failed = true;
                state.diskError(e.getMessage());
                Log.error(component, "flushing blocks from " + peer.name() + " failed: " + e.getMessage()
                    + "; closing the link (they stay owed by the peer)");
                ctx.close();
                return;
            }
            ctx.writeAndFlush(WireProtocol.seqFrame(ctx.alloc(), WireProtocol.TYPE_FLUSHED, upTo, crc), ctx.voidPromise());
            flushedSent = upTo;
            if (appliedSeq != flushedSent)
            {
                flushScheduled = true;
                ctx.executor().schedule(() -> flushAndSay(ctx), FLUSH_DELAY_MS, TimeUnit.MILLISECONDS);
            }
        }

        void failed()
        {
            failed = true;
        }

        void closed()
        {
            failed = true;
            applier.close();
        }
    }

    /** The dialling side's handler: the authentication and handshake replies, then the peer's frames. */
    private final class ClientHandler extends ChannelInboundHandlerAdapter
    {
        private final CompletableFuture<Hello> hello = new CompletableFuture<>();
        private final CompletableFuture<PskAuth.Reply> authReply = new CompletableFuture<>();
        private volatile String closeReason = "link closed by peer";
        private Receiver receiver;

        Hello awaitHello(final long millis) throws LinkDownException, PeerRejectedException, InterruptedException
        {
            return await(hello, millis, "no handshake reply within " + millis + " ms");
        }

        PskAuth.Reply awaitAuthReply(final long millis) throws LinkDownException, PeerRejectedException,
            InterruptedException
        {
            return await(authReply, millis, "no AUTH_REPLY within " + millis + " ms");
        }

        private <T> T await(final CompletableFuture<T> f, final long millis, final String timeout)
            throws LinkDownException, PeerRejectedException, InterruptedException
        {
            try
            {
                return f.get(millis, TimeUnit.MILLISECONDS);
            }
            catch (final TimeoutException e)
            {
                throw new LinkDownException(timeout);
            }
            catch (final ExecutionException e)
            {
                if (e.getCause() instanceof PeerRejectedException)
                {
                    throw (PeerRejectedException)e.getCause();
                }
                throw new LinkDownException(closeReason);
            }
        }

        @Override
        public void channelRead(final ChannelHandlerContext ctx, final Object msg)
        {
            final ByteBuf frame = (ByteBuf)msg;
            try
            {
                final int type = WireProtocol.readType(frame);
                if (receiver != null)
                {
                    receiver.onFrame(ctx, frame, type);
                    return;
                }
                switch (type)
                {
                    case WireProtocol.TYPE_AUTH_REPLY:
                        authReply.complete(PskAuth.decodeReply(frame));
                        break;
                    case WireProtocol.TYPE_REJECT:
                        final PeerRejectedException rejected = new PeerRejectedException("refused by peer: "
                            + Hello.decodeReject(frame), Hello.rejectCode(frame) == WireProtocol.REJECT_AUTH);
                        authReply.completeExceptionally(rejected);
                        hello.completeExceptionally(rejected);
                        break;
                    case WireProtocol.TYPE_HELLO_OK:
                        final Hello reply = Hello.decode(frame);
                        final String why = refusal(reply);
                        if (why != null)
                        {
                            final ByteBuf reject = ctx.alloc().buffer();
                            Hello.encodeReject(reject, why, new CRC32C());
                            ctx.writeAndFlush(reject);
                            hello.completeExceptionally(new PeerRejectedException(why));
                            ctx.close();
                            break;
                        }
                        // Before the next frame is read: the peer starts sending right after its HELLO_OK.
                        receiver = new Receiver(ctx.channel());
                        hello.complete(reply);
                        break;
                    case WireProtocol.TYPE_PING:
                        break;
                    default:
                        throw new ProtocolException("unexpected " + WireProtocol.typeName(type)
                            + " frame before the two-way handshake ended");
                }
            }
            finally
            {
                frame.release();
            }
        }

        @Override
        public void channelReadComplete(final ChannelHandlerContext ctx)
        {
            if (receiver != null)
            {
                receiver.readComplete(ctx);
            }
        }

        @Override
        public void userEventTriggered(final ChannelHandlerContext ctx, final Object evt)
        {
            if (evt instanceof IdleStateEvent && ((IdleStateEvent)evt).state() == IdleState.READER_IDLE)
            {
                closeReason = "no frame from " + peer.name() + " for " + node.heartbeatTimeoutMillis()
                    + " ms (heartbeat timeout)";
                Log.warn(component, closeReason + "; closing");
                ctx.close();
            }
            else if (evt instanceof IdleStateEvent && ((IdleStateEvent)evt).state() == IdleState.WRITER_IDLE)
            {
                ctx.writeAndFlush(WireProtocol.ping(ctx.alloc(), new CRC32C()), ctx.voidPromise());
            }
        }

        @Override
        public void exceptionCaught(final ChannelHandlerContext ctx, final Throwable cause)
        {
            if (receiver != null)
            {
                receiver.failed();
            }
            final Throwable root = cause instanceof DecoderException && cause.getCause() != null ? cause.getCause() : cause;
            closeReason = (cause instanceof DecoderException || cause instanceof ProtocolException ? "bad input from "
                : "link error with ") + peer.name() + ": " + root.getMessage();
            Log.warn(component, closeReason + "; closing the link");
            ctx.close();
        }

        @Override
        public void channelInactive(final ChannelHandlerContext ctx)
        {
            if (receiver != null)
            {
                receiver.closed();
            }
            authReply.completeExceptionally(new LinkDownException(closeReason));
            hello.completeExceptionally(new LinkDownException(closeReason));
            ctx.fireChannelInactive();
        }
    }
}
