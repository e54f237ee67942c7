package io.doppel.tools;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

@Timeout(30)
class LinkProxyTest
{
    private static final int READ_TIMEOUT_MILLIS = 5_000;

    @Test
    void forwardsBothWaysAndCountsClientToTargetBytes() throws Exception
    {
        try (EchoServer echo = new EchoServer(); LinkProxy proxy = LinkProxy.start(echo.port());
            Socket s = connect(proxy))
        {
            assertThat(proxy.port()).isNotEqualTo(echo.port());
            assertThat(roundTrip(s, "hello")).isEqualTo("hello");
            assertThat(roundTrip(s, "world!")).isEqualTo("world!");
            assertThat(proxy.bytesForwarded()).isEqualTo(11);
            assertThat(proxy.activeConnections()).isEqualTo(1);
        }
    }

    @Test
    void passesAnEndOfStreamOnAsAHalfClose() throws Exception
    {
        try (EchoServer echo = new EchoServer(); LinkProxy proxy = LinkProxy.start(echo.port());
            Socket s = connect(proxy))
        {
            s.getOutputStream().write("bye".getBytes(StandardCharsets.US_ASCII));
            s.shutdownOutput();
            // the echo server answers, sees the end of stream and closes: the client reads the answer, then -1
            assertThat(new String(s.getInputStream().readAllBytes(), StandardCharsets.US_ASCII)).isEqualTo("bye");
        }
    }

    @Test
    void cutResetsOpenConnectionsAndEveryNewOne() throws Exception
    {
        try (EchoServer echo = new EchoServer(); LinkProxy proxy = LinkProxy.start(echo.port());
            Socket s = connect(proxy))
        {
            assertThat(roundTrip(s, "hello")).isEqualTo("hello");
            assertThat(echo.accepted()).isEqualTo(1);

            proxy.cut();

            assertThat(proxy.isCut()).isTrue();
            assertReset(s);
            try (Socket late = connect(proxy))
            {
                assertReset(late);
            }
            assertThat(echo.accepted()).as("connections reaching the target while cut").isEqualTo(1);
            assertThat(proxy.connectionsAccepted()).isEqualTo(2);
            assertThat(proxy.activeConnections()).isZero();
            assertThat(proxy.bytesForwarded()).isEqualTo(5);
        }
    }

    @Test
    void restoreForwardsNewConnectionsAgain() throws Exception
    {
        try (EchoServer echo = new EchoServer(); LinkProxy proxy = LinkProxy.start(echo.port()))
        {
            proxy.cut();
            try (Socket during = connect(proxy))
            {
                assertReset(during);
            }

            proxy.restore();

            assertThat(proxy.isCut()).isFalse();
            try (Socket after = connect(proxy))
            {
                assertThat(roundTrip(after, "again")).isEqualTo("again");
            }
            assertThat(echo.accepted()).isEqualTo(1);
            assertThat(proxy.bytesForwarded()).isEqualTo(5);
        }
    }

    @Test
    void aConnectionToADownTargetIsReset() throws Exception
    {
        final int down;
        try (ServerSocket gone = new ServerSocket(0, 1, InetAddress.getLoopbackAddress()))
        {
            down = gone.getLocalPort();
        }
        try (LinkProxy proxy = LinkProxy.start(down); Socket s = connect(proxy))
        {
            assertReset(s);
        }
    }

    private static Socket connect(final LinkProxy proxy) throws IOException
    {
        final Socket s = new Socket(InetAddress.getLoopbackAddress(), proxy.port());
        s.setSoTimeout(READ_TIMEOUT_MILLIS);
        return s;
    }

    private static String roundTrip(final Socket s, final String text) throws IOException
    {
        final byte[] out = text.getBytes(StandardCharsets.US_ASCII);
        s.getOutputStream().write(out);
        s.getOutputStream().flush();
        final byte[] in = s.getInputStream().readNBytes(out.length);
        return new String(in, StandardCharsets.US_ASCII);
    }

    /** The proxy closed {@code s} abruptly: reading gives "Connection reset", not an end of stream (FIN). */
    private static void assertReset(final Socket s)
    {
        assertThatThrownBy(() -> s.getInputStream().read())
            .isInstanceOf(SocketException.class)
            .hasMessageContaining("reset");
    }

    /** Echoes every byte back on each connection; closes a connection at its end of stream. */
    private static final class EchoServer implements AutoCloseable
    {
        private final ServerSocket server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        private final AtomicInteger accepted = new AtomicInteger();
        private final List<Socket> sockets = new CopyOnWriteArrayList<>();

        EchoServer() throws IOException
        {
            final Thread t = new Thread(this::acceptLoop, "echo-" + server.getLocalPort());
            t.setDaemon(true);
            t.start();
        }

        int port()
        {
            return server.getLocalPort();
        }

        int accepted()
        {
            return accepted.get();
        }

        private void acceptLoop()
        {
            while (!server.isClosed())
            {
                try
                {
                    final Socket s = server.accept();
                    accepted.incrementAndGet();
                    sockets.add(s);
                    final Thread t = new Thread(() -> echo(s), "echo-" + server.getLocalPort() + "-" + s.getPort());
                    t.setDaemon(true);
                    t.start();
                }
                catch (final IOException e)
                {
                    // closed
                }
            }
        }

        private static void echo(final Socket s)
        {
            try (s)
            {
                final InputStream in = s.getInputStream();
                final OutputStream out = s.getOutputStream();
                final byte[] buf = new byte[4096];
                int n;
                while ((n = in.read(buf)) >= 0)
                {
                    out.write(buf, 0, n);
                    out.flush();
                }
            }
            catch (final IOException e)
            {
                // reset by the proxy: that is what the tests do to it
            }
        }

        @Override
        public void close() throws IOException
        {
            server.close();
            for (final Socket s : sockets)
            {
                s.close();
            }
        }
    }
}
