package io.doppel.net;

import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.ServerSocketChannel;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.util.concurrent.DefaultThreadFactory;

import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;

/** Netty's event loops and channel classes: native epoll when the kernel and JNI allow it, NIO otherwise. */
public final class Transport implements AutoCloseable
{
    private final EventLoopGroup group;
    private final Class<? extends SocketChannel> socketClass;
    private final Class<? extends ServerSocketChannel> serverClass;
    private final String name;

    private Transport(final EventLoopGroup group, final Class<? extends SocketChannel> socketClass,
        final Class<? extends ServerSocketChannel> serverClass, final String name)
    {
        this.group = group;
        this.socketClass = socketClass;
        this.serverClass = serverClass;
        this.name = name;
    }

    public static Transport create(final String threadPrefix, final int threads)
    {
        final DefaultThreadFactory factory = new DefaultThreadFactory(threadPrefix, true);
        if (Epoll.isAvailable())
        {
            final IoHandlerFactory io = EpollIoHandler.newFactory();
            return new Transport(new MultiThreadIoEventLoopGroup(threads, factory, io), EpollSocketChannel.class,
                EpollServerSocketChannel.class, "epoll");
        }
        return new Transport(new MultiThreadIoEventLoopGroup(threads, factory, NioIoHandler.newFactory()),
            NioSocketChannel.class, NioServerSocketChannel.class, "nio");
    }

    public EventLoopGroup group()
    {
        return group;
    }

    public Class<? extends SocketChannel> socketClass()
    {
        return socketClass;
    }

    public Class<? extends ServerSocketChannel> serverClass()
    {
        return serverClass;
    }

    /** "epoll" or "nio". */
    public String name()
    {
        return name;
    }

    /** Resolves a config address (kept unresolved until it is used, so DNS changes are picked up). */
    public static InetSocketAddress resolve(final InetSocketAddress address)
    {
        return address.isUnresolved() ? new InetSocketAddress(address.getHostString(), address.getPort()) : address;
    }

    @Override
    public void close()
    {
        // A quiet period, not 0: a closing channel's pipeline is torn down by hops between this loop and the
        // apply executor, and a loop that terminated at once would refuse the last hop.
        group.shutdownGracefully(100, 2_000, TimeUnit.MILLISECONDS).syncUninterruptibly();
    }
}
