package io.doppel.tools;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A TCP proxy on loopback that a fault test puts between two nodes, to break their link on demand.
 *
 * <p>Why: stopping a daemon only tests an orderly close (FIN) followed by a restart. A link that fails
 * in the field is different: both processes keep running, the connection dies in the middle of a frame
 * with a reset, and reconnection attempts fail for a while and then succeed. This proxy makes that
 * reproducible inside one test JVM, without root, iptables or tc: point the primary's {@code [[peer]]}
 * address at {@link #port()}, forward to the standby's listen port, then {@link #cut()} and
 * {@link #restore()} the link while writes continue, and watch {@link #bytesForwarded()} to see what
 * crossed it (for example that a resync after a cut sends only the changed blocks).
 *
 * <p>Every accepted connection gets its own connection to {@code 127.0.0.1:targetPort} and two blocking
 * pump threads, one per direction. An end of stream is passed on as a half-close; an error in either
 * direction resets both sides. While cut, the proxy still accepts (the listener stays bound, so a
 * connecting peer sees its connection reset rather than refused, as behind a broken middlebox) but resets
 * each new connection at once without contacting the target. Test code only: it is simple, not fast.
 */
public final class LinkProxy implements AutoCloseable
{
    private static final int BUFFER_BYTES = 64 * 1024;
    private static final int CONNECT_TIMEOUT_MILLIS = 5_000;

    private final int targetPort;
    private final ServerSocket server;
    private final Thread acceptor;
    private final AtomicLong forwarded = new AtomicLong();
    private final AtomicInteger accepted = new AtomicInteger();
    private final Object lock = new Object();
    /** Connections being forwarded; guarded by {@link #lock}, as are {@link #cut} and {@link #closed}. */
    private final Set<Pair> pairs = new HashSet<>();
    private boolean cut;
    private boolean closed;

    private LinkProxy(final int targetPort) throws IOException
    {
        this.targetPort = targetPort;
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        this.acceptor = new Thread(this::acceptLoop, "link-proxy-" + server.getLocalPort() + "-accept");
        this.acceptor.setDaemon(true);
    }

    /** Listens on an ephemeral loopback port and forwards every connection to 127.0.0.1:{@code targetPort}. */
    public static LinkProxy start(final int targetPort) throws IOException
    {
        if (targetPort < 1 || targetPort > 65535)
        {
            throw new IllegalArgumentException("targetPort=" + targetPort + ": expected 1..65535");
        }
        final LinkProxy proxy = new LinkProxy(targetPort);
        proxy.acceptor.start();
        return proxy;
    }

    /** The loopback port this proxy listens on. */
    public int port()
    {
        return server.getLocalPort();
    }

    /** The port connections are forwarded to. */
    public int targetPort()
    {
        return targetPort;
    }

    /**
     * Resets every current connection on both sides (RST, not FIN: {@code SO_LINGER} 0) and, until
     * {@link #restore()}, resets each new connection as soon as it is accepted.
     */
    public void cut()
    {
        final List<Pair> victims;
        synchronized (lock)
        {
            cut = true;
            victims = new ArrayList<>(pairs);
            pairs.clear();
        }
        for (final Pair p : victims)
        {
            p.abort();
        }
    }

    /** Forwards new connections again after {@link #cut()}; connections reset by the cut stay closed. */
    public void restore()
    {
        synchronized (lock)
        {
            cut = false;
        }
    }

    /** Whether the link is cut. */
    public boolean isCut()
    {
        synchronized (lock)
        {
            return cut;
        }
    }

    /**
     * Bytes read from clients and handed to the target so far (the client to target direction), over all
     * connections. Counted before each write, so a test that has seen the target's answer sees the bytes it
     * answered; a write that fails because of a cut may be counted without having arrived.
     */
    public long bytesForwarded()
    {
        return forwarded.get();
    }

    /** Connections accepted so far, including those reset at once while cut. */
    public int connectionsAccepted()
    {
        return accepted.get();
    }

    /** Connections being forwarded now. */
    public int activeConnections()
    {
        synchronized (lock)
        {
            return pairs.size();
        }
    }

    /** Stops listening and resets every connection. */
    @Override
    public void close()
    {
        final List<Pair> victims;
        synchronized (lock)
        {
            closed = true;
            victims = new ArrayList<>(pairs);
            pairs.clear();
        }
        closeQuietly(server);
        for (final Pair p : victims)
        {
            p.abort();
        }
        try
        {
            acceptor.join(5_000);
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
    }

    private void acceptLoop()
    {
        while (true)
        {
            final Socket client;
            try
            {
                client = server.accept();
            }
            catch (final IOException e)
            {
                if (server.isClosed())
                {
                    return;
                }
                pause();
                continue;
            }
            accepted.incrementAndGet();
            if (isCut())
            {
                reset(client);
                continue;
            }
            final Socket upstream = new Socket();
            try
            {
                client.setTcpNoDelay(true);
                upstream.setTcpNoDelay(true);
                upstream.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), targetPort),
                    CONNECT_TIMEOUT_MILLIS);
            }
            catch (final IOException e)
            {
                // the target is down: the client sees a reset, as it would when connecting to it directly
                reset(client);
                reset(upstream);
                continue;
            }
            final Pair pair = new Pair(client, upstream);
            final boolean keep;
            synchronized (lock)
            {
                // checked again under the lock: a cut() that ran while we were connecting must not miss this pair
                keep = !cut && !closed;
                if (keep)
                {
                    pairs.add(pair);
                }
            }
            if (keep)
            {
                pair.start();
            }
            else
            {
                pair.abort();
            }
        }
    }

    /** After a failed accept (out of file descriptors, say), so that the loop does not spin. */
    private static void pause()
    {
        try
        {
            Thread.sleep(10);
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
    }

    /** Closes with SO_LINGER 0, so the peer gets an RST instead of a FIN. */
    private static void reset(final Socket s)
    {
        try
        {
            if (!s.isClosed())
            {
                s.setSoLinger(true, 0);
            }
        }
        catch (final IOException e)
        {
            // closing is all that is left to do
        }
        closeQuietly(s);
    }

    private static void closeQuietly(final AutoCloseable c)
    {
        try
        {
            c.close();
        }
        catch (final Exception e)
        {
            // nothing to do: the socket is gone either way
        }
    }

    /** One proxied connection: the accepted client socket and its connection to the target. */
    private final class Pair
    {
        private final Socket client;
        private final Socket upstream;
        private final AtomicInteger pumpsRunning = new AtomicInteger(2);

        Pair(final Socket client, final Socket upstream)
        {
            this.client = client;
            this.upstream = upstream;
        }

        void start()
        {
            final String name = "link-proxy-" + port() + "-" + client.getPort();
            startPump(client, upstream, true, name + "-up");
            startPump(upstream, client, false, name + "-down");
        }

        private void startPump(final Socket from, final Socket to, final boolean count, final String name)
        {
            final Thread t = new Thread(() -> pump(from, to, count), name);
            t.setDaemon(true);
            t.start();
        }

        private void pump(final Socket from, final Socket to, final boolean count)
        {
            final byte[] buf = new byte[BUFFER_BYTES];
            try
            {
                final InputStream in = from.getInputStream();
                final OutputStream out = to.getOutputStream();
                int n;
                while ((n = in.read(buf)) >= 0)
                {
                    if (count)
                    {
                        // counted before the write, so that the count includes whatever the target answers to
                        forwarded.addAndGet(n);
                    }
                    out.write(buf, 0, n);
                    out.flush();
                }
                // end of stream: pass the half-close on, and close both when both directions have ended
                to.shutdownOutput();
                if (pumpsRunning.decrementAndGet() == 0)
                {
                    finish();
                }
            }
            catch (final IOException e)
            {
                // a reset, a cut or a close on either side: reset the other side too
                abort();
            }
        }

        private void finish()
        {
            synchronized (lock)
            {
                pairs.remove(this);
            }
            closeQuietly(client);
            closeQuietly(upstream);
        }

        void abort()
        {
            synchronized (lock)
            {
                pairs.remove(this);
            }
            reset(client);
            reset(upstream);
        }
    }
}
