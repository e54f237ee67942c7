package io.doppel.nbd;

import io.doppel.config.ConfigException;
import io.doppel.config.ConfigLoader;
import io.doppel.config.Limits;
import io.doppel.nbd.NbdTestSupport.NodePair;
import io.doppel.replication.TestCluster;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The [limits] table against a running primary: connections over {@code nbd-clients} or faster than
 * {@code connection-rate} are closed before a byte is exchanged and counted in /metrics, a request over
 * {@code nbd-request} is refused with EOVERFLOW, and well-behaved clients are served throughout.
 */
class LimitsTest
{
    private static final long SIZE = 16L << 20;
    private static final int EOVERFLOW = 75;

    @TempDir
    Path dir;

    @Test
    void connectionsOverTheMaximumAreClosedUnreadAndCounted() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 7);
        cluster.alphaExtra = "[limits]\nnbd-clients = 2\nconnection-rate = 1000\nnbd-request = \"64KiB\"\n";
        try (NodePair nodes = NodePair.start(cluster, false, false))
        {
            nodes.awaitInSync(30);
            final RawNbdClient first = RawNbdClient.open(nodes.alphaNbdPort, "vm1");
            try (RawNbdClient second = RawNbdClient.greeted(nodes.alphaNbdPort))
            {
                assertThat(closedUnread(nodes.alphaNbdPort)).as("a third connection with nbd-clients = 2").isTrue();
                assertThat(metric(cluster.alphaAdmin, "doppel_refused_connections_total", "listener=\"nbd\"",
                    "reason=\"max-open\"")).isEqualTo(1.0);

                // The request limit is advertised and enforced on the connections that were let in.
                final long cookie = first.request(0, RawNbdClient.CMD_READ, 0, 128 << 10, null);
                assertThat(first.simpleReply(cookie)).as("a 128 KiB READ with nbd-request = 64KiB").isEqualTo(EOVERFLOW);
                assertThat(first.read(0, 64 << 10)).as("a 64 KiB READ on the same connection").hasSize(64 << 10);
                assertThat(metric(cluster.alphaAdmin, "doppel_nbd_oversized_requests_total")).isEqualTo(1.0);
            }
            first.close();
            // Room again once clients have gone.
            NbdTestSupport.awaitTrue(() -> metricOrNaN(cluster.alphaAdmin, "doppel_open_connections",
                "listener=\"nbd\"") == 0.0, 10, () -> "NBD connections still counted open after both closed");
            try (RawNbdClient again = RawNbdClient.open(nodes.alphaNbdPort, "vm1"))
            {
                assertThat(again.read(1 << 20, 4096)).hasSize(4096);
            }
        }
    }

    @Test
    void connectionsFasterThanTheRateAreClosedUnreadAndCounted() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 8);
        cluster.alphaExtra = "[limits]\nconnection-rate = 2\n";
        try (NodePair nodes = NodePair.start(cluster, false, false))
        {
            nodes.awaitInSync(30);
            Thread.sleep(1_100); // the bucket is full again after the test's own connections
            int greeted = 0;
            int refused = 0;
            final List<Socket> open = new ArrayList<>();
            try
            {
                for (int i = 0; i < 8; i++)
                {
                    final Socket s = new Socket(InetAddress.getLoopbackAddress(), nodes.alphaNbdPort);
                    open.add(s);
                }
                for (final Socket s : open)
                {
                    if (greetingOrEof(s))
                    {
                        greeted++;
                    }
                    else
                    {
                        refused++;
                    }
                }
            }
            finally
            {
                for (final Socket s : open)
                {
                    s.close();
                }
            }
            assertThat(greeted).as("connections greeted out of 8 opened at once with connection-rate = 2")
                .isBetween(2, 3);
            assertThat(refused).isEqualTo(8 - greeted);
            assertThat(metric(cluster.alphaAdmin, "doppel_refused_connections_total", "listener=\"nbd\"",
                "reason=\"rate\"")).isEqualTo((double)refused);
            Thread.sleep(1_100);
            try (RawNbdClient later = RawNbdClient.open(nodes.alphaNbdPort, "vm1"))
            {
                assertThat(later.read(0, 4096)).as("a client a second later").hasSize(4096);
            }
        }
    }

    @Test
    void badLimitsAreConfigErrorsNamingKeyValueAndRange()
    {
        assertThatThrownBy(() -> load("nbd-request = \"3000\"")).isInstanceOf(ConfigException.class)
            .hasMessageContaining("[limits].nbd-request=\"3000\": expected a power of two between 64KiB and 32MiB");
        assertThatThrownBy(() -> load("nbd-clients = 0")).isInstanceOf(ConfigException.class)
            .hasMessageContaining("[limits].nbd-clients=0: expected a whole number between 1 and 100000");
        assertThatThrownBy(() -> load("peer-in-flight = \"1MiB\"")).isInstanceOf(ConfigException.class)
            .hasMessageContaining("[limits].peer-in-flight=\"1MiB\": expected a size between 2MiB and 1GiB");
        assertThatThrownBy(() -> load("max-clients = 3")).isInstanceOf(ConfigException.class)
            .hasMessageContaining("[limits].max-clients: unknown key");
    }

    @Test
    void theSampleConfigStatesTheDefaults() throws Exception
    {
        final Path sample = Path.of("..", "systemd", "doppel.toml");
        // the sample's peer link names a key file of /etc: made here, private, as the docs say
        final Path psk = Files.createTempFile("peer-beta", ".psk",
            java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                java.nio.file.attribute.PosixFilePermissions.fromString("rw-------")));
        try
        {
            Files.writeString(psk, "0123456789abcdef".repeat(4) + "\n");
            final String text = Files.readString(sample);
            assertThat(text).contains("\"/etc/doppel/peer-beta.psk\"");
            assertThat(ConfigLoader.parse(text.replace("/etc/doppel/peer-beta.psk", psk.toString()), sample.toString())
                .limits()).as("[limits] in " + sample).isEqualTo(Limits.defaults());
        }
        finally
        {
            Files.delete(psk);
        }
        assertThat(ConfigLoader.parse("[node]\nname = \"a\"\n", "test.toml").limits()).isEqualTo(Limits.defaults());
    }

    private static void load(final String limitsLine) throws ConfigException
    {
        ConfigLoader.parse("[node]\nname = \"a\"\n[limits]\n" + limitsLine + "\n", "test.toml");
    }

    /** True when the server closes the connection without sending its greeting. */
    private static boolean closedUnread(final int port) throws IOException
    {
        try (Socket s = new Socket(InetAddress.getLoopbackAddress(), port))
        {
            return !greetingOrEof(s);
        }
    }

    /** True on the NBD greeting's first byte, false on end of stream. */
    private static boolean greetingOrEof(final Socket s) throws IOException
    {
        s.setSoTimeout(5_000);
        final InputStream in = s.getInputStream();
        try
        {
            final int b = in.read();
            return b != -1;
        }
        catch (final SocketTimeoutException e)
        {
            throw new AssertionError("neither a greeting nor a close within 5 s");
        }
        catch (final IOException e)
        {
            return false; // connection reset
        }
    }

    private static double metric(final int adminPort, final String name, final String... labels) throws Exception
    {
        final double v = metricOrNaN(adminPort, name, labels);
        assertThat(v).as(name + " in /metrics").isNotNaN();
        return v;
    }

    private static double metricOrNaN(final int adminPort, final String name, final String... labels)
    {
        try
        {
            final String text = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + adminPort + "/metrics")).build(), HttpResponse.BodyHandlers.ofString())
                .body();
            final Matcher m = Pattern.compile("(?m)^" + name + "\\{([^}]*)\\} (\\S+)$").matcher(text);
            while (m.find())
            {
                boolean all = true;
                for (final String l : labels)
                {
                    all &= m.group(1).contains(l);
                }
                if (all)
                {
                    return Double.parseDouble(m.group(2));
                }
            }
            return Double.NaN;
        }
        catch (final IOException | InterruptedException e)
        {
            return Double.NaN;
        }
    }
}
