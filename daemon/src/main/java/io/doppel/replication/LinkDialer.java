package io.doppel.replication;

import io.doppel.config.NodeConfig;
import io.doppel.config.PeerConfig;
import io.doppel.net.FrameDecoder;
import io.doppel.net.Heartbeat;
import io.doppel.net.Transport;
import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.timeout.IdleStateHandler;
import io.netty.util.concurrent.EventExecutorGroup;

import java.util.concurrent.TimeUnit;

/**
 * Opens the connecting side of a peer link, the same way for one-way senders and two-way links: TCP with
 * no delay, a 5 s connect timeout and 1–4 MiB write water marks; TLS when the node has it; the heartbeat
 * timeout and PINGs; the frame decoder; then the link's own handler.
 */
final class LinkDialer
{
    private LinkDialer()
    {
    }

    /**
     * Connects to {@code peer}; {@code handler} runs on {@code handlerGroup} when one is given (a handler that
     * writes into mapped images must not run on the I/O loop), else on the I/O loop.
     */
    static Channel connect(final Transport transport, final NodeConfig node, final PeerConfig peer, final SslContext tls,
        final EventExecutorGroup handlerGroup, final ChannelHandler handler) throws LinkDownException, InterruptedException
    {
        final Bootstrap b = new Bootstrap()
            .group(transport.group())
            .channel(transport.socketClass())
            .option(ChannelOption.TCP_NODELAY, true)
            .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 5_000)
            .option(ChannelOption.WRITE_BUFFER_WATER_MARK, new WriteBufferWaterMark(1 << 20, 4 << 20))
            .handler(new ChannelInitializer<Channel>()
            {
                @Override
                protected void initChannel(final Channel ch)
                {
                    if (tls != null)
                    {
                        ch.pipeline().addLast("tls", tls.newHandler(ch.alloc(), peer.address().getHostString(),
                            peer.address().getPort()));
                    }
                    ch.pipeline().addLast(
                        new IdleStateHandler(node.heartbeatTimeoutMillis(), 0, 0, TimeUnit.MILLISECONDS),
                        new Heartbeat(node.heartbeatIntervalMillis()),
                        new FrameDecoder());
                    if (handlerGroup != null)
                    {
                        ch.pipeline().addLast(handlerGroup, "apply", handler);
                    }
                    else
                    {
                        ch.pipeline().addLast(handler);
                    }
                }
            });
        final ChannelFuture f = b.connect(Transport.resolve(peer.address()));
        f.await();
        if (!f.isSuccess())
        {
            throw new LinkDownException("cannot connect: " + f.cause().getMessage());
        }
        return f.channel();
    }
}
