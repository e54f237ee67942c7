package io.doppel.net;

import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.util.concurrent.ScheduledFuture;

import java.util.concurrent.TimeUnit;

/**
 * Fires {@link IdleStateEvent#WRITER_IDLE_STATE_EVENT} when nothing was written on the channel for the
 * heartbeat interval, so the link handler sends a PING. Netty's {@code IdleStateHandler} does this by
 * replacing every write's promise with a new one and a listener: an allocation per frame on the link's
 * hot path. This handler only counts writes, and a timer on the event loop looks at the count four
 * times per interval (so a PING follows at most 1.25 intervals of silence).
 */
public final class Heartbeat extends ChannelDuplexHandler
{
    private static final int CHECKS_PER_INTERVAL = 4;

    private final long intervalMillis;
    private long writes;
    private long writesAtLastCheck;
    private int quietChecks;
    private ScheduledFuture<?> timer;

    public Heartbeat(final long intervalMillis)
    {
        this.intervalMillis = intervalMillis;
    }

    @Override
    public void handlerAdded(final ChannelHandlerContext ctx)
    {
        if (ctx.channel().isActive())
        {
            start(ctx);
        }
    }

    @Override
    public void channelActive(final ChannelHandlerContext ctx) throws Exception
    {
        start(ctx);
        super.channelActive(ctx);
    }

    private void start(final ChannelHandlerContext ctx)
    {
        if (timer == null)
        {
            final long period = Math.max(1, intervalMillis / CHECKS_PER_INTERVAL);
            timer = ctx.executor().scheduleAtFixedRate(() -> check(ctx), period, period, TimeUnit.MILLISECONDS);
        }
    }

    private void check(final ChannelHandlerContext ctx)
    {
        if (writes != writesAtLastCheck)
        {
            writesAtLastCheck = writes;
            quietChecks = 0;
            return;
        }
        if (++quietChecks >= CHECKS_PER_INTERVAL)
        {
            quietChecks = 0;
            ctx.fireUserEventTriggered(IdleStateEvent.WRITER_IDLE_STATE_EVENT);
        }
    }

    @Override
    public void write(final ChannelHandlerContext ctx, final Object msg, final ChannelPromise promise)
    {
        writes++;
        ctx.write(msg, promise);
    }

    @Override
    public void channelInactive(final ChannelHandlerContext ctx) throws Exception
    {
        stop();
        super.channelInactive(ctx);
    }

    @Override
    public void handlerRemoved(final ChannelHandlerContext ctx)
    {
        stop();
    }

    private void stop()
    {
        if (timer != null)
        {
            timer.cancel(false);
            timer = null;
        }
    }
}
