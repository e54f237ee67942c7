package io.doppel.net;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Bounded read-ahead for a channel without auto-read whose frames are consumed on another executor (the
 * standby's apply thread). The I/O loop keeps reading while fewer than {@code limit} bytes of frames wait
 * to be consumed, so reading the socket overlaps with applying what was read; at the limit it stops
 * reading, and TCP slows the sender down, until the consumer has worked the backlog down to half.
 * Without it, each read waited for the previous read's frames to be applied: the link ran in turns.
 */
public final class ReadAhead extends ChannelInboundHandlerAdapter
{
    private final long limit;
    private final AtomicLong pending = new AtomicLong();
    /** Reading stopped at the limit; only the I/O loop sets it, the consumer reads it. */
    private volatile boolean stalled;
    private volatile ChannelHandlerContext ctx;

    /** Times reading stopped at the limit, shared by a listener's links (null: not counted). */
    private final java.util.concurrent.atomic.LongAdder stalls;

    public ReadAhead(final long limit)
    {
        this(limit, null);
    }

    public ReadAhead(final long limit, final java.util.concurrent.atomic.LongAdder stalls)
    {
        this.limit = limit;
        this.stalls = stalls;
    }

    @Override
    public void handlerAdded(final ChannelHandlerContext ctx)
    {
        this.ctx = ctx;
    }

    @Override
    public void channelActive(final ChannelHandlerContext ctx)
    {
        ctx.read();
        ctx.fireChannelActive();
    }

    @Override
    public void channelRead(final ChannelHandlerContext ctx, final Object msg)
    {
        if (msg instanceof ByteBuf)
        {
            pending.addAndGet(((ByteBuf)msg).readableBytes());
        }
        ctx.fireChannelRead(msg);
    }

    @Override
    public void channelReadComplete(final ChannelHandlerContext ctx)
    {
        ctx.fireChannelReadComplete();
        if (pending.get() < limit)
        {
            ctx.read();
            return;
        }
        stalled = true;
        if (stalls != null)
        {
            stalls.increment();
        }
        // The consumer may have caught up between the check and the flag: look again (it looks at the flag
        // after its own update, so one of the two sees the other).
        resume();
    }

    /**
     * The consumer is done with {@code bytes} of frames (as they were when read). Called from the consumer's
     * thread for every frame it was passed, whatever became of it.
     */
    public void consumed(final long bytes)
    {
        final long left = pending.addAndGet(-bytes);
        final ChannelHandlerContext c = ctx;
        if (stalled && left <= limit / 2 && c != null)
        {
            c.executor().execute(this::resume);
        }
    }

    /** Bytes read and not yet consumed. */
    public long pending()
    {
        return pending.get();
    }

    private void resume()
    {
        if (stalled && pending.get() < limit)
        {
            stalled = false;
            ctx.read();
        }
    }
}
