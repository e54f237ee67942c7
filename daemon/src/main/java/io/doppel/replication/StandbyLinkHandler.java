package io.doppel.replication;

import com.dynatrace.hash4j.hashing.HashValue128;
import io.doppel.log.Log;
import io.doppel.net.Hello;
import io.doppel.net.ProtocolException;
import io.doppel.net.ReadAhead;
import io.doppel.net.WireProtocol;
import io.doppel.pipeline.BlockApplier;
import io.doppel.pipeline.BlockHash;
import io.doppel.pipeline.BlockHasher;
import io.doppel.storage.DiskWriteException;
import io.doppel.storage.MetadataFile;
import io.doppel.storage.Volume;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.DecoderException;
import io.netty.handler.timeout.IdleState;
import io.netty.handler.timeout.IdleStateEvent;

import java.util.function.Function;
import java.util.zip.CRC32C;

/**
 * The standby's end of one peer link. It runs on an apply executor, not the I/O loop, because it
 * writes into the mapped image (page faults can block). The channel does not auto-read: {@link ReadAhead}
 * on the I/O loop reads on while a bounded amount of frames waits here, so a slow disk slows the
 * primary down through TCP instead of filling memory.
 */
final class StandbyLinkHandler extends ChannelInboundHandlerAdapter
{
    /**
     * Unsent reply bytes beyond which a HASH_REQUEST is refused: twice the hash lists a primary may have in
     * flight (HASH_WINDOW lists of at most 1 MiB).
     */
    static final long MAX_UNSENT_BYTES = 2L * ReplicationSender.HASH_WINDOW * (WireProtocol.MAX_LENGTH + 4);

    private final String nodeName;
    private final LinkTargets volumes;
    private final long timeoutMillis;
    private final CRC32C crc = new CRC32C();
    private StandbyVolume standby;
    /** Set when the HELLO attached a two-way volume: its receiver takes every later frame. */
    private TwoWayLink.Receiver twoWay;
    private BlockApplier applier;
    /** The hash of a whole zero block of the attached volume (set with it). */
    private HashValue128 zeroBlockHash;
    /** Hashes blocks for HASH_LIST answers without an object per block (event loop only). */
    private final BlockHasher hasher = new BlockHasher();
    private String component;
    private long appliedSeq;
    private long ackedSeq;
    /** Set on the first bad frame: frames of the same read still queued here must not reach the volume. */
    private boolean failed;

    private final ReadAhead readAhead;

    StandbyLinkHandler(final String nodeName, final LinkTargets volumes, final long timeoutMillis,
        final ReadAhead readAhead)
    {
        this.readAhead = readAhead;
        this.nodeName = nodeName;
        this.volumes = volumes;
        this.timeoutMillis = timeoutMillis;
        this.component = nodeName + "/link";
    }

    @Override
    public void channelActive(final ChannelHandlerContext ctx)
    {
        ctx.fireChannelActive(); // ReadAhead has asked for the first read
    }

    @Override
    public void channelRead(final ChannelHandlerContext ctx, final Object msg)
    {
        final ByteBuf frame = (ByteBuf)msg;
        final int frameBytes = frame.readableBytes();
        try
        {
            if (failed)
            {
                return;
            }
            final int wireBytes = WireProtocol.wireBytes(frame);
            final int type = WireProtocol.readType(frame);
            if (twoWay != null)
            {
                twoWay.onFrame(ctx, frame, type);
                return;
            }
            if (standby == null)
            {
                if (type == WireProtocol.TYPE_PING)
                {
                    return; // a heartbeat can overtake a HELLO on a loaded machine: harmless
                }
                if (type != WireProtocol.TYPE_HELLO)
                {
                    throw new ProtocolException("expected HELLO as the first frame, got " + WireProtocol.typeName(type));
                }
                onHello(ctx, Hello.decode(frame));
                return;
            }
            synchronized (standby)
            {
                if (!standby.isCurrent(ctx.channel()))
                {
                    failed = true;
                    ctx.close(); // a newer link from the primary took over this volume
                    return;
                }
                applyFrame(ctx, frame, type, wireBytes);
            }
        }
        catch (final DiskWriteException e)
        {
            failed = true; // no ACK for this read: the frames applied before it wait for the next sync too
            standby.diskFault(nodeName, e);
            ctx.close();
        }
        catch (final RuntimeException e)
        {
            failed = true;
            throw e;
        }
        catch (final InternalError e)
        {
            failed = true;
            // A fault in a mapped write: the disk is full or failing. Nothing is acknowledged for it.
            throw new ProtocolException("writing the copy failed (disk full or I/O error?): " + e.getMessage());
        }
        finally
        {
            frame.release();
            readAhead.consumed(frameBytes);
        }
    }

    /** Applies one frame of the current link. Caller holds the volume's monitor. */
    private void applyFrame(final ChannelHandlerContext ctx, final ByteBuf frame, final int type, final int wireBytes)
    {
        standby.state().bytesReceived.addAndGet(wireBytes);
        switch (type)
        {
            case WireProtocol.TYPE_DATA:
                appliedSeq = applier.applyData(frame);
                standby.state().blocksReceived.addAndGet(blocks(applier.lastLength()));
                break;
            case WireProtocol.TYPE_ZERO:
                appliedSeq = applier.applyZero(frame);
                standby.state().blocksReceived.addAndGet(blocks(applier.lastLength()));
                break;
            case WireProtocol.TYPE_HASH_REQUEST:
                onHashRequest(ctx, frame);
                break;
            case WireProtocol.TYPE_SYNC_BEGIN:
                WireProtocol.requireBody(frame, 9, type);
                appliedSeq = frame.readLong();
                final int kind = frame.readUnsignedByte();
                final boolean full = kind != 0;
                if (kind == 2)
                {
                    standby.saveDivergentBlocks(nodeName); // a split-brain policy chose this copy's changes to go
                }
                // Durable before any block of the sync lands: a crash from here on leaves a copy that
                // says it is inconsistent (and, for a whole-volume compare, holds no known generation).
                standby.metadata().copyState(full ? 0 : standby.metadata().currentGen(), MetadataFile.Disk.INCONSISTENT);
                standby.state().replication(VolumeState.Replication.SYNCING);
                standby.state().disk(VolumeState.Disk.SYNCING);
                Log.info(component, "sync from primary begins; this copy is inconsistent until it ends");
                break;
            case WireProtocol.TYPE_SYNC_DONE:
                WireProtocol.requireBody(frame, 16, type);
                appliedSeq = frame.readLong();
                final long gen = frame.readLong();
                standby.volume().flush();
                standby.syncCompleted(gen);
                standby.state().replication(VolumeState.Replication.STREAMING);
                standby.state().disk(VolumeState.Disk.UP_TO_DATE);
                Log.info(component, "sync done, copy flushed and up to date; streaming");
                break;
            case WireProtocol.TYPE_FLUSH:
                WireProtocol.requireBody(frame, 8, type);
                appliedSeq = frame.readLong();
                standby.volume().flush();
                sendSeq(ctx, WireProtocol.TYPE_ACK, appliedSeq); // ACK first: what is durable is also held
                ackedSeq = appliedSeq;
                sendSeq(ctx, WireProtocol.TYPE_FLUSHED, appliedSeq);
                break;
            case WireProtocol.TYPE_PING:
                break;
            case WireProtocol.TYPE_REJECT:
                failed = true;
                final String why = Hello.decodeReject(frame);
                Log.error(component, "primary refused this standby: " + why);
                if (why.startsWith("split brain"))
                {
                    standby.state().replication(VolumeState.Replication.SPLIT_BRAIN);
                }
                ctx.close();
                break;
            default:
                throw new ProtocolException("unexpected " + WireProtocol.typeName(type) + " frame from the primary");
        }
    }

    private void onHello(final ChannelHandlerContext ctx, final Hello hello)
    {
        component = nodeName + "/" + hello.volume();
        final TwoWayLink twoWayTarget = volumes.twoWay(hello.volume());
        if (twoWayTarget != null || hello.role() == WireProtocol.ROLE_TWO_WAY)
        {
            final String why = twoWayRefusal(hello, twoWayTarget);
            if (why != null)
            {
                refuse(ctx, why);
                return;
            }
            twoWay = twoWayTarget.accept(ctx, hello);
            Log.info(component, "accepted two-way link from " + hello.node() + " at " + ctx.channel().remoteAddress());
            return;
        }
        final StandbyVolume target = volumes.standbyFor(hello);
        String why = null;
        if (target == null)
        {
            why = volumes.isPrimaryHere(hello.volume())
                ? "volume " + hello.volume() + " is primary on " + nodeName + " too: both sides cannot be primary"
                : "no volume named \"" + hello.volume() + "\" on node " + nodeName + " (" + volumes.describe() + ")";
        }
        else
        {
            why = hello.mismatch(nodeName, target.config().peer(), WireProtocol.ROLE_PRIMARY, target.volume().size(),
                target.config().blockSize());
        }
        if (why != null)
        {
            refuse(ctx, why);
            return;
        }
        standby = target;
        if (applier != null)
        {
            applier.close();
        }
        applier = new BlockApplier(target.volume());
        zeroBlockHash = BlockHash.ofZeros(target.config().blockSize());
        target.attach(ctx.channel());
        final ByteBuf ok = ctx.alloc().buffer();
        final MetadataFile meta = target.metadata();
        Hello.of(WireProtocol.ROLE_STANDBY, target.volume().size(), target.config().blockSize(), nodeName,
            hello.node(), hello.volume()).withGenerations(meta.currentGen(), meta.bitmapGen(), meta.disk().ordinal(),
            (target.doubtful() ? Hello.FLAG_UNCLEAN : 0) | (target.blank() ? Hello.FLAG_BLANK : 0))
            .withChanges(meta.trackingSince(), meta.dirtyMap().dirtyBlocks() + meta.dirtyMap().inFlightBlocks())
            .encode(ok, WireProtocol.TYPE_HELLO_OK, crc);
        ctx.writeAndFlush(ok);
        Log.info(component, "accepted link from primary " + hello.node() + " at " + ctx.channel().remoteAddress());
    }

    /** Why a HELLO of, or for, a two-way volume cannot attach here (null: it can attach to {@code target}). */
    private String twoWayRefusal(final Hello hello, final TwoWayLink target)
    {
        if (target != null)
        {
            return target.refusal(hello);
        }
        if (volumes.isPrimaryHere(hello.volume()) || volumes.standby(hello.volume()) != null)
        {
            // one-way here: the mismatch names both modes
            return hello.mismatch(nodeName, hello.node(), volumes.isPrimaryHere(hello.volume()) ? WireProtocol.ROLE_PRIMARY
                : WireProtocol.ROLE_STANDBY, hello.size(), hello.blockSize());
        }
        return "no volume named \"" + hello.volume() + "\" on node " + nodeName + " (" + volumes.describe() + ")";
    }

    /** Answers a HELLO with REJECT naming {@code why}, logs it, and closes the link. */
    private void refuse(final ChannelHandlerContext ctx, final String why)
    {
        Log.error(component, "refused link from " + ctx.channel().remoteAddress() + ": " + why);
        final ByteBuf reject = ctx.alloc().buffer();
        Hello.encodeReject(reject, why, crc);
        ctx.writeAndFlush(reject).addListener(ChannelFutureListener.CLOSE);
    }

    private long blocks(final long bytes)
    {
        final int blockSize = standby.config().blockSize();
        return (bytes + blockSize - 1) / blockSize;
    }

    private void onHashRequest(final ChannelHandlerContext ctx, final ByteBuf frame)
    {
        WireProtocol.requireBody(frame, 12, WireProtocol.TYPE_HASH_REQUEST);
        final long start = frame.readLong();
        final int count = frame.readInt();
        final Volume volume = standby.volume();
        final int blockSize = standby.config().blockSize();
        final long blocks = (volume.size() + blockSize - 1) / blockSize;
        if (count <= 0 || count > WireProtocol.MAX_HASHES_PER_LIST || start < 0 || start > blocks - count)
        {
            throw new ProtocolException("HASH_REQUEST for blocks " + start + "+" + count + ": expected 1-"
                + WireProtocol.MAX_HASHES_PER_LIST + " blocks within 0-" + blocks);
        }
        final long unsent = ctx.channel().bytesBeforeWritable();
        if (unsent > MAX_UNSENT_BYTES)
        {
            // Each 24-byte request makes up to a 1 MiB list: a peer that asks and never reads would make this
            // side hold every list. A real primary keeps at most HASH_WINDOW lists in flight.
            throw new ProtocolException("HASH_REQUEST while " + unsent + " bytes of earlier replies are still unsent:"
                + " the primary does not read its hash lists (at most " + ReplicationSender.HASH_WINDOW
                + " may be in flight)");
        }
        final ByteBuf list = ctx.alloc().buffer(WireProtocol.HEADER_BYTES + 12 + count * WireProtocol.HASH_BYTES);
        try
        {
            hashBlocks(list, volume, start, count, blockSize);
        }
        catch (final RuntimeException | InternalError e)
        {
            list.release();
            throw e;
        }
        ctx.writeAndFlush(list, ctx.voidPromise());
    }

    private void hashBlocks(final ByteBuf list, final Volume volume, final long start, final int count,
        final int blockSize)
    {
        final int begin = WireProtocol.beginFrame(list, WireProtocol.TYPE_HASH_LIST);
        list.writeLong(start);
        list.writeInt(count);
        for (int i = 0; i < count; i++)
        {
            final long offset = (start + i) * blockSize;
            final int length = (int)Math.min(blockSize, volume.size() - offset);
            hasher.hashBlock(volume.windowFor(offset), volume.indexInWindow(offset), length, blockSize, zeroBlockHash);
            list.writeLong(hasher.high());
            list.writeLong(hasher.low());
        }
        WireProtocol.endFrame(list, begin, crc);
    }

    @Override
    public void channelReadComplete(final ChannelHandlerContext ctx)
    {
        if (failed)
        {
            return;
        }
        if (twoWay != null)
        {
            twoWay.readComplete(ctx);
            return;
        }
        if (standby != null && appliedSeq != ackedSeq)
        {
            sendSeq(ctx, WireProtocol.TYPE_ACK, appliedSeq);
            ackedSeq = appliedSeq;
        }
    }

    private void sendSeq(final ChannelHandlerContext ctx, final int type, final long seq)
    {
        ctx.writeAndFlush(WireProtocol.seqFrame(ctx.alloc(), type, seq, crc), ctx.voidPromise());
    }

    @Override
    public void userEventTriggered(final ChannelHandlerContext ctx, final Object evt)
    {
        if (evt instanceof IdleStateEvent)
        {
            final IdleStateEvent idle = (IdleStateEvent)evt;
            if (idle.state() == IdleState.WRITER_IDLE)
            {
                ctx.writeAndFlush(WireProtocol.ping(ctx.alloc(), crc), ctx.voidPromise());
            }
            else if (idle.state() == IdleState.READER_IDLE)
            {
                Log.warn(component, "no frame from the primary for " + timeoutMillis + " ms (heartbeat timeout); closing");
                ctx.close();
            }
        }
    }

    @Override
    public void exceptionCaught(final ChannelHandlerContext ctx, final Throwable cause)
    {
        failed = true;
        if (twoWay != null)
        {
            twoWay.failed();
        }
        final Throwable root = cause instanceof DecoderException && cause.getCause() != null ? cause.getCause() : cause;
        Log.warn(component, "link from " + ctx.channel().remoteAddress() + ": " + root.getMessage() + "; closing");
        ctx.close();
    }

    @Override
    public void channelInactive(final ChannelHandlerContext ctx)
    {
        if (twoWay != null)
        {
            twoWay.closed();
            Log.info(component, "two-way link closed");
        }
        if (applier != null)
        {
            applier.close(); // same event loop as every applyData of this link
        }
        if (standby != null)
        {
            standby.detach(ctx.channel());
            Log.info(component, "link from primary closed");
        }
        ctx.fireChannelInactive();
    }
}
