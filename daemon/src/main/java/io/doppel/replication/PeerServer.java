package io.doppel.replication;

import io.doppel.config.NodeConfig;
import io.doppel.log.Log;
import io.doppel.net.ConnectionGate;
import io.doppel.net.FrameDecoder;
import io.doppel.net.Heartbeat;
import io.doppel.net.LinkSecurity;
import io.doppel.net.PeerAuthGate;
import io.doppel.net.ReadAhead;
import io.doppel.net.Transport;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.handler.timeout.IdleStateHandler;
import io.netty.util.concurrent.EventExecutorGroup;

import java.io.IOException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.LongSupplier;

/**
 * Accepts peer links on {@code [node].listen}; each link names, in its handshake, the volume it feeds. With
 * TLS configured every link must complete mutual TLS first; {@link PeerAuthGate} then lets no frame through
 * to a volume before the peer is authenticated.
 */
public final class PeerServer implements AutoCloseable
{
    private final Channel serverChannel;

    private PeerServer(final Channel serverChannel)
    {
        this.serverChannel = serverChannel;
    }

    public static PeerServer bind(final NodeConfig node, final Transport transport, final EventExecutorGroup applyGroup,
        final LinkTargets volumes, final ConnectionGate gate, final LongSupplier readAheadBytes,
        final LongAdder readAheadStalls, final LinkSecurity security) throws IOException
    {
        final ServerBootstrap b = new ServerBootstrap()
            .group(transport.group())
            .channel(transport.serverClass())
            .option(ChannelOption.SO_REUSEADDR, true)
            .childOption(ChannelOption.TCP_NODELAY, true)
            .childOption(ChannelOption.AUTO_READ, false)
            .childHandler(new ChannelInitializer<Channel>()
            {
                @Override
                protected void initChannel(final Channel ch)
                {
                    ch.pipeline().addLast("gate", gate);
                    if (security.tls())
                    {
                        ch.pipeline().addLast("tls", security.serverHandler(ch.alloc()));
                    }
                    ch.pipeline().addLast(
                        new IdleStateHandler(node.heartbeatTimeoutMillis(), 0, 0, TimeUnit.MILLISECONDS),
                        new Heartbeat(node.heartbeatIntervalMillis()),
                        new FrameDecoder(),
                        new PeerAuthGate(security));
                    final ReadAhead readAhead = new ReadAhead(readAheadBytes.getAsLong(), readAheadStalls);
                    ch.pipeline().addLast(readAhead);
                    ch.pipeline().addLast(applyGroup, "apply",
                        new StandbyLinkHandler(node.name(), volumes, node.heartbeatTimeoutMillis(), readAhead));
                }
            });
        final ChannelFuture f = b.bind(Transport.resolve(node.listen())).awaitUninterruptibly();
        if (!f.isSuccess())
        {
            throw new IOException("cannot listen for peers on " + node.listen().getHostString() + ":"
                + node.listen().getPort() + " ([node].listen): " + f.cause().getMessage());
        }
        Log.info(node.name() + "/peers", "listening for peer links on " + f.channel().localAddress()
            + " (" + transport.name() + (security.tls() ? ", mutual TLS" : "") + ")");
        return new PeerServer(f.channel());
    }

    @Override
    public void close()
    {
        serverChannel.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
    }
}
