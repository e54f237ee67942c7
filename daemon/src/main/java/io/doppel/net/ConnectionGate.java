package io.doppel.net;

import io.doppel.log.Log;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.IntSupplier;

/**
 * Admits new connections on one kind of listener (NBD, peer links) while fewer than a maximum are open and
 * the accept rate stays under a bound; any other connection is closed at once, before a byte of it is read,
 * counted and logged (at most one log line per second per reason, with how many were refused since).
 * Without it a client could open connections until the daemon ran out of file descriptors or threads.
 *
 * <p>One instance is shared by every channel of its listeners. The bounds are read on each accept, so a
 * live reload changes them for new connections.
 */
@ChannelHandler.Sharable
public final class ConnectionGate extends ChannelInboundHandlerAdapter
{
    private final String listener;
    private final String component;
    private final IntSupplier maxOpen;
    private final IntSupplier perSecond;
    private final AtomicInteger open = new AtomicInteger();
    private final LongAdder refusedOpen = new LongAdder();
    private final LongAdder refusedRate = new LongAdder();
    // Token bucket, touched only under the lock: accepts are rare next to requests.
    private double tokens = -1;
    private long refilledNanos;
    private long lastLogNanos;
    private long unlogged;

    /**
     * @param listener  what the metrics and log lines call it ({@code nbd}, {@code peer})
     * @param maxOpen   the most connections open at once ({@code [limits]} key named in the log line)
     * @param perSecond new connections per second, also the burst
     */
    public ConnectionGate(final String listener, final String component, final IntSupplier maxOpen,
        final IntSupplier perSecond)
    {
        this.listener = listener;
        this.component = component;
        this.maxOpen = maxOpen;
        this.perSecond = perSecond;
    }

    @Override
    public void channelActive(final ChannelHandlerContext ctx)
    {
        final int max = maxOpen.getAsInt();
        final String refusal;
        if (open.incrementAndGet() > max)
        {
            open.decrementAndGet();
            refusedOpen.increment();
            refusal = max + " " + listener + " connections are open (the limit, [limits]." + (listener.equals("nbd")
                ? "nbd-clients" : "peer-links") + ")";
        }
        else if (!takeToken())
        {
            open.decrementAndGet();
            refusedRate.increment();
            refusal = "more than " + perSecond.getAsInt() + " new " + listener + " connections in a second"
                + " ([limits].connection-rate)";
        }
        else
        {
            ctx.channel().closeFuture().addListener(f -> open.decrementAndGet());
            ctx.pipeline().remove(this);
            ctx.fireChannelActive();
            return;
        }
        logRefusal(ctx, refusal);
        ctx.close();
    }

    private synchronized boolean takeToken()
    {
        final long now = System.nanoTime();
        final int rate = perSecond.getAsInt();
        if (tokens < 0)
        {
            tokens = rate;
        }
        else
        {
            tokens = Math.min(rate, tokens + (now - refilledNanos) * 1e-9 * rate);
        }
        refilledNanos = now;
        if (tokens < 1)
        {
            return false;
        }
        tokens -= 1;
        return true;
    }

    private synchronized void logRefusal(final ChannelHandlerContext ctx, final String why)
    {
        final long now = System.nanoTime();
        if (lastLogNanos != 0 && now - lastLogNanos < 1_000_000_000L)
        {
            unlogged++;
            return;
        }
        Log.warn(component, "refused a " + listener + " connection from " + ctx.channel().remoteAddress() + ": " + why
            + (unlogged > 0 ? " (" + unlogged + " more refused since the last such line)" : ""));
        lastLogNanos = now;
        unlogged = 0;
    }

    public String listener()
    {
        return listener;
    }

    /** Connections admitted and still open. */
    public int open()
    {
        return open.get();
    }

    /** Connections refused because the maximum were open. */
    public long refusedOpen()
    {
        return refusedOpen.sum();
    }

    /** Connections refused because they came faster than the rate. */
    public long refusedRate()
    {
        return refusedRate.sum();
    }
}
