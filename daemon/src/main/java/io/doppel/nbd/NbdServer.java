package io.doppel.nbd;

import io.doppel.config.HostPort;
import io.doppel.log.Log;
import io.doppel.net.Transport;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.channel.unix.DomainSocketAddress;
import io.netty.util.concurrent.EventExecutorGroup;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Serves NBD exports on one address (TCP {@code host:port} or {@code unix:/path}); the export name a
 * client asks for selects the volume. Several volumes may share an address.
 */
public final class NbdServer implements AutoCloseable
{
    /** Unsent reply bytes per client at which it stops being served, and below which it is served again. */
    static final int REPLY_HIGH_WATER = 2 << 20;
    static final int REPLY_LOW_WATER = 512 << 10;

    private final String address;
    private final Channel channel;
    private final Path socketPath;
    private final Map<String, NbdExport> exports;
    private final io.netty.channel.group.ChannelGroup clients;
    private final String component;

    private NbdServer(final String address, final Channel channel, final Path socketPath,
        final Map<String, NbdExport> exports, final io.netty.channel.group.ChannelGroup clients, final String component)
    {
        this.address = address;
        this.channel = channel;
        this.socketPath = socketPath;
        this.exports = exports;
        this.clients = clients;
        this.component = component;
    }

    /**
     * Serves {@code export} under its name from now on (a role change: read-write after promote,
     * read-only after demote) and closes the clients connected to the old one, which reconnect.
     */
    public void replaceExport(final NbdExport export)
    {
        exports.put(export.name(), export);
        for (final Channel client : clients)
        {
            final io.netty.channel.ChannelHandler h = client.pipeline().get("nbd");
            if (h instanceof NbdConnection && export.name().equals(((NbdConnection)h).exportName()))
            {
                client.close();
            }
        }
        Log.info(component, "export " + export.name() + " is now " + (export.readOnly() ? "read-only" : "read-write")
            + "; its clients were disconnected");
    }

    public boolean serves(final String name)
    {
        return exports.containsKey(name);
    }

    /** The address as configured ({@code host:port} or {@code unix:/path}). */
    public String address()
    {
        return address;
    }

    /** Serves a volume added by a live reload. */
    public void addExport(final NbdExport export)
    {
        exports.put(export.name(), export);
        Log.info(component, "serving NBD export " + export.name() + (export.readOnly() ? " read-only" : " read-write")
            + " on " + address);
    }

    /** Stops offering {@code name} to new clients (a reload that failed after adding it). */
    public void removeExport(final String name)
    {
        exports.remove(name);
    }

    /**
     * Binds {@code address} ("host:port" or "unix:/path") for {@code exports}; requests run on
     * {@code workers}, never on the I/O loop.
     */
    public static NbdServer bind(final String nodeName, final String address, final Map<String, NbdExport> exports,
        final Transport transport, final EventExecutorGroup workers, final NbdLimits limits) throws IOException
    {
        return bind(nodeName, address, exports, transport, workers, limits, null);
    }

    /** As above, offering or requiring TLS ({@code tls} null: plaintext only). */
    public static NbdServer bind(final String nodeName, final String address, final Map<String, NbdExport> exports,
        final Transport transport, final EventExecutorGroup workers, final NbdLimits limits, final NbdTls tls)
        throws IOException
    {
        final String component = nodeName + "/nbd";
        final Map<String, NbdExport> live = new java.util.concurrent.ConcurrentHashMap<>(exports);
        final io.netty.channel.group.ChannelGroup clients = new io.netty.channel.group.DefaultChannelGroup(
            io.netty.util.concurrent.GlobalEventExecutor.INSTANCE);
        final ServerBootstrap b = new ServerBootstrap().group(transport.group())
            .childOption(ChannelOption.AUTO_READ, false)
            // Above the high mark a connection serves no more requests until its replies drain below the
            // low one: unsent replies per client stay under the mark plus one request's reply.
            .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, new WriteBufferWaterMark(REPLY_LOW_WATER,
                REPLY_HIGH_WATER))
            .childHandler(new ChannelInitializer<Channel>()
            {
                @Override
                protected void initChannel(final Channel ch)
                {
                    clients.add(ch);
                    ch.pipeline().addLast("gate", limits.gate());
                    ch.pipeline().addLast(workers, "nbd", new NbdConnection(live, component,
                        limits.maxRequestBytes().getAsInt(), limits.oversizedRequests(), tls));
                }
            });
        final SocketAddress bindAddress;
        Path socketPath = null;
        if (address.startsWith("unix:"))
        {
            if (!Epoll.isAvailable())
            {
                throw new IOException("nbd=\"" + address + "\": Unix sockets need the native epoll transport, which is"
                    + " not available here: " + Epoll.unavailabilityCause());
            }
            socketPath = Path.of(address.substring("unix:".length()));
            Files.createDirectories(socketPath.toAbsolutePath().getParent());
            removeStaleSocket(socketPath, address);
            b.channel(EpollServerDomainSocketChannel.class);
            bindAddress = new DomainSocketAddress(socketPath.toString());
        }
        else
        {
            b.channel(transport.serverClass()).option(ChannelOption.SO_REUSEADDR, true)
                .childOption(ChannelOption.TCP_NODELAY, true);
            bindAddress = Transport.resolve(NbdAddress.tcp(address));
        }
        final ChannelFuture f = b.bind(bindAddress).awaitUninterruptibly();
        if (!f.isSuccess())
        {
            throw new IOException("cannot serve NBD on " + address + ": " + f.cause().getMessage());
        }
        Log.info(component, "serving NBD export(s) " + String.join(", ", exports.keySet()) + " on " + address
            + " (" + exports.values().stream().map(e -> e.name() + (e.readOnly() ? " read-only" : " read-write"))
            .reduce((x, y) -> x + ", " + y).orElse("") + ")");
        return new NbdServer(address, f.channel(), socketPath, live, clients, component);
    }

    /** Removes a socket left by a previous run; refuses to touch anything that is not a socket. */
    private static void removeStaleSocket(final Path path, final String address) throws IOException
    {
        if (!Files.exists(path, java.nio.file.LinkOption.NOFOLLOW_LINKS))
        {
            return;
        }
        final int mode = (Integer)Files.getAttribute(path, "unix:mode", java.nio.file.LinkOption.NOFOLLOW_LINKS);
        if ((mode & 0170000) != 0140000)
        {
            throw new IOException("nbd=\"" + address + "\": " + path + " exists and is not a socket; refusing to"
                + " replace it (choose another path)");
        }
        Files.delete(path);
    }

    @Override
    public void close()
    {
        channel.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
        if (socketPath != null)
        {
            try
            {
                Files.deleteIfExists(socketPath);
            }
            catch (final IOException ignore)
            {
                // nothing to do: the next start removes it
            }
        }
    }

    /** Parsing of the {@code nbd} config value: "HOST:PORT", a bare PORT (loopback) or "unix:/path". */
    public static final class NbdAddress
    {
        private NbdAddress()
        {
        }

        /** Null when valid, else what is wrong. */
        public static String problem(final String address)
        {
            if (address.startsWith("unix:"))
            {
                return address.length() > "unix:".length() && address.charAt(5) == '/' ? null
                    : "expected unix:/absolute/path";
            }
            try
            {
                tcp(address);
                return null;
            }
            catch (final IllegalArgumentException e)
            {
                return e.getMessage();
            }
        }

        /** Whether a TCP address binds loopback only (a bare port does). */
        public static boolean isLoopback(final String address)
        {
            final InetSocketAddress a = tcp(address);
            try
            {
                return a.getAddress() != null ? a.getAddress().isLoopbackAddress()
                    : java.net.InetAddress.getByName(a.getHostString()).isLoopbackAddress();
            }
            catch (final java.net.UnknownHostException e)
            {
                return false;
            }
        }

        static InetSocketAddress tcp(final String address)
        {
            if (address.matches("\\d{1,5}"))
            {
                return tcp("127.0.0.1:" + address); // a bare port: loopback, the safe default
            }
            try
            {
                return HostPort.parse(address);
            }
            catch (final IllegalArgumentException e)
            {
                throw new IllegalArgumentException(e.getMessage() + " (or unix:/path)");
            }
        }
    }
}
