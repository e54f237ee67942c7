package io.doppel.replication;

import io.doppel.log.Log;
import io.doppel.net.Hello;
import io.doppel.net.ProtocolException;
import io.doppel.net.PskAuth;
import io.doppel.net.WireProtocol;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.DecoderException;
import io.netty.handler.timeout.IdleState;
import io.netty.handler.timeout.IdleStateEvent;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.zip.CRC32C;

/**
 * The primary's end of one peer link, on the event loop: hands the handshake reply and hash lists to
 * the {@link ReplicationSender} thread, records acknowledgements, sends heartbeats and closes the link
 * on silence or bad input. It never touches the volume, so it never blocks the loop.
 */
final class PrimaryLinkHandler extends ChannelInboundHandlerAdapter
{
    private final String component;
    private final VolumeState state;
    private final AckTracker acks;
    private final long timeoutMillis;
    private final CRC32C crc = new CRC32C();
    private final CompletableFuture<Hello> hello = new CompletableFuture<>();
    private final CompletableFuture<PskAuth.Reply> authReply = new CompletableFuture<>();
    private final LinkedBlockingQueue<ByteBuf> hashLists = new LinkedBlockingQueue<>();
    private volatile boolean closed;
    private volatile String closeReason = "link closed by peer";
    /** The TLS failure that ended the link, if one did (a TLS 1.3 server refuses a client certificate after the
     * client's side of the handshake is done, so it arrives here, not on the handshake future). */
    private volatile Throwable tlsFailure;

    PrimaryLinkHandler(final String component, final VolumeState state, final AckTracker acks,
        final long timeoutMillis)
    {
        this.acks = acks;
        this.component = component;
        this.state = state;
        this.timeoutMillis = timeoutMillis;
    }

    Hello awaitHello(final long millis) throws LinkDownException, PeerRejectedException, InterruptedException
    {
        try
        {
            return hello.get(millis, TimeUnit.MILLISECONDS);
        }
        catch (final TimeoutException e)
        {
            throw new LinkDownException("no handshake reply within " + millis + " ms");
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

    /** The standby's answer to AUTH_BEGIN. */
    PskAuth.Reply awaitAuthReply(final long millis) throws LinkDownException, PeerRejectedException, InterruptedException
    {
        try
        {
            return authReply.get(millis, TimeUnit.MILLISECONDS);
        }
        catch (final TimeoutException e)
        {
            throw new LinkDownException("no AUTH_REPLY within " + millis + " ms (does the peer speak protocol v3?)");
        }
        catch (final ExecutionException e)
        {
            if (e.getCause() instanceof PeerRejectedException)
            {
                throw (PeerRejectedException)e.getCause();
            }
            if (e.getCause() instanceof ProtocolException)
            {
                throw (ProtocolException)e.getCause();
            }
            throw new LinkDownException(closeReason);
        }
    }

    /** The next hash list (the caller releases it); waits while the link is up. */
    ByteBuf awaitHashList() throws LinkDownException, InterruptedException
    {
        final long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis * 6);
        while (true)
        {
            final ByteBuf list = hashLists.poll(50, TimeUnit.MILLISECONDS);
            if (list != null)
            {
                return list;
            }
            if (closed)
            {
                throw new LinkDownException(closeReason);
            }
            if (System.nanoTime() > deadline)
            {
                throw new LinkDownException("no hash list from the standby within " + timeoutMillis * 6 + " ms");
            }
        }
    }

    Throwable tlsFailure()
    {
        return tlsFailure;
    }

    boolean isClosed()
    {
        return closed;
    }

    String closeReason()
    {
        return closeReason;
    }

    void releaseQueued()
    {
        ByteBuf b;
        while ((b = hashLists.poll()) != null)
        {
            b.release();
        }
    }

    @Override
    public void channelRead(final ChannelHandlerContext ctx, final Object msg)
    {
        final ByteBuf frame = (ByteBuf)msg;
        boolean keep = false;
        try
        {
            state.bytesReceived.addAndGet(WireProtocol.wireBytes(frame));
            final int type = WireProtocol.readType(frame);
            switch (type)
            {
                case WireProtocol.TYPE_HELLO_OK:
                    hello.complete(Hello.decode(frame));
                    break;
                case WireProtocol.TYPE_REJECT:
                    final boolean auth = Hello.rejectCode(frame) == WireProtocol.REJECT_AUTH;
                    final PeerRejectedException rejected = new PeerRejectedException("refused by peer: "
                        + Hello.decodeReject(frame), auth);
                    authReply.completeExceptionally(rejected);
                    hello.completeExceptionally(rejected);
                    break;
                case WireProtocol.TYPE_AUTH_REPLY:
                    try
                    {
                        authReply.complete(PskAuth.decodeReply(frame));
                    }
                    catch (final ProtocolException e)
                    {
                        authReply.completeExceptionally(e);
                        throw e;
                    }
                    break;
                case WireProtocol.TYPE_HASH_LIST:
                    hashLists.add(frame);
                    keep = true;
                    break;
                case WireProtocol.TYPE_ACK:
                    WireProtocol.requireBody(frame, 8, type);
                    final long seq = frame.readLong();
                    if (seq > state.ackedSeq.get())
                    {
                        state.ackedSeq.set(seq);
                    }
                    state.sampleAck(seq);
                    acks.onAcked(seq);
                    state.sampleReceived(acks.receivedLsn());
                    break;
                case WireProtocol.TYPE_FLUSHED:
                    WireProtocol.requireBody(frame, 8, type);
                    acks.onFlushed(frame.readLong());
                    break;
                case WireProtocol.TYPE_PING:
                    break;
                default:
                    throw new ProtocolException("unexpected " + WireProtocol.typeName(type) + " frame from the standby");
            }
        }
        finally
        {
            if (!keep)
            {
                frame.release();
            }
        }
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
                closeReason = "no frame from the standby for " + timeoutMillis + " ms (heartbeat timeout)";
                ctx.close();
            }
        }
    }

    @Override
    public void exceptionCaught(final ChannelHandlerContext ctx, final Throwable cause)
    {
        for (Throwable c = cause; c != null && tlsFailure == null; c = c.getCause() == c ? null : c.getCause())
        {
            if (c instanceof javax.net.ssl.SSLException)
            {
                tlsFailure = c;
                closeReason = io.doppel.net.LinkSecurity.describe(c);
            }
        }
        if (closed || !ctx.channel().isActive())
        {
            return; // writes failing on a link that is already going: its first reason stands
        }
        final Throwable root = cause instanceof DecoderException && cause.getCause() != null ? cause.getCause() : cause;
        closeReason = (cause instanceof DecoderException ? "bad input from the standby: " : "link error: ") + root;
        Log.warn(component, closeReason + "; closing the link");
        ctx.close();
    }

    @Override
    public void channelInactive(final ChannelHandlerContext ctx)
    {
        closed = true;
        authReply.completeExceptionally(new LinkDownException(closeReason));
        hello.completeExceptionally(new LinkDownException(closeReason));
        ctx.fireChannelInactive();
    }
}
