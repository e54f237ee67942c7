package io.doppel.twoway;

import com.fasterxml.jackson.databind.JsonNode;
import io.doppel.nbd.NbdTestSupport;
import io.doppel.net.TestCerts;
import io.doppel.replication.DaemonProcesses;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Two-way mode around its edges: the first start over an image that holds data, an authenticated link, and
 * a node killed with acknowledged writes it had not sent yet.
 */
class TwoWayFaultTest
{
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    @Test
    void firstStartOverAnImageWithDataSendsItToABlankPeerWithoutConflicts() throws Exception
    {
        final TwoWayPair pair = new TwoWayPair(dir, 32L << 20, BLOCK);
        MixedImage.create(pair.image("alpha"), 32L << 20, 7);
        try (pair)
        {
            pair.start();
            pair.awaitConverged(60);
            pair.a().flush();
            pair.b().flush();
            assertThat(MixedImage.hash(pair.image("beta"))).isEqualTo(MixedImage.hash(pair.image("alpha")));
            assertThat(pair.b().status().appliedBlocks.get()).as("beta received alpha's non-zero blocks").isPositive();
            assertThat(pair.a().status().conflicts() + pair.b().status().conflicts()).isZero();
        }
    }

    @Test
    void twoCopiesOfTheSameImageMergeWithoutConflicts() throws Exception
    {
        final TwoWayPair pair = new TwoWayPair(dir, 8L << 20, BLOCK);
        MixedImage.create(pair.image("alpha"), 8L << 20, 9);
        Files.copy(pair.image("alpha"), pair.image("beta"), StandardCopyOption.REPLACE_EXISTING);
        final String hash = MixedImage.hash(pair.image("alpha"));
        try (pair)
        {
            pair.start();
            pair.awaitConverged(60);
            pair.a().flush();
            pair.b().flush();
            assertThat(MixedImage.hash(pair.image("alpha"))).isEqualTo(hash);
            assertThat(MixedImage.hash(pair.image("beta"))).isEqualTo(hash);
            assertThat(pair.a().status().conflicts() + pair.b().status().conflicts()).as("equal bytes are no conflict")
                .isZero();
        }
    }

    @Test
    void aPreSharedKeyAuthenticatesTheTwoWayLinkAndAWrongOneIsRefused() throws Exception
    {
        Assumptions.assumeTrue(NbdTestSupport.toolExists("openssl"), "SKIPPED: openssl is not installed");
        final TestCerts certs = new TestCerts(dir.resolve("keys"));
        final Path key = certs.psk("link.psk");
        try (TwoWayPair pair = new TwoWayPair(dir.resolve("good"), 4L << 20, BLOCK))
        {
            pair.peerExtra = "psk-file = \"" + key + "\"";
            pair.start();
            pair.awaitLinked(20);
            TwoWayPair.write(pair.b(), 3, TwoWayTest.fill(0x5b));
            pair.awaitConverged(30);
            assertThat(TwoWayPair.read(pair.a(), 3, BLOCK)).isEqualTo(TwoWayTest.fill(0x5b));
        }
        final Path other = certs.psk("other.psk");
        try (TwoWayPair pair = new TwoWayPair(dir.resolve("bad"), 4L << 20, BLOCK))
        {
            pair.peerExtra = "psk-file = \"" + key + "\"";
            pair.beta = pair.startNode("beta");
            pair.peerExtra = "psk-file = \"" + other + "\"";
            pair.alpha = pair.startNode("alpha");
            NbdTestSupport.awaitTrue(() -> pair.a().state().lastError().contains("pre-shared") || pair.a().state().lastError()
                .contains("refused"), 20, () -> "alpha never reported the refusal: " + TwoWayPair.describe(pair.a()));
            assertThat(pair.linked()).isFalse();
            assertThat(pair.alpha.linkSecurity().failures("psk") + pair.alpha.linkSecurity().failures("refused-by-peer")
                + pair.beta.linkSecurity().failures("psk")).isPositive();
        }
    }

    @Test
    void aNodeKilledWithUnsentAcknowledgedWritesSendsThemAfterItsRestart() throws Exception
    {
        Assumptions.assumeTrue(NbdTestSupport.toolExists("qemu-io"), "SKIPPED: qemu-io is not installed (apt install qemu-utils)");
        final TwoWayPair pair = new TwoWayPair(dir, 16L << 20, BLOCK);
        try (pair; DaemonProcesses daemons = new DaemonProcesses(dir))
        {
            final Path alphaConfig = pair.config("alpha");
            final Path betaConfig = pair.config("beta");
            Process beta = daemons.start(betaConfig, "beta");
            daemons.start(alphaConfig, "alpha");
            daemons.awaitStatus(pair.alphaAdmin, TwoWayFaultTest::settled, 60);

            pair.proxy.cut();
            daemons.awaitStatus(pair.betaAdmin, v -> !"streaming".equals(v.path("replication").asText()), 30);
            // Acknowledged to qemu-io by beta while alone, then beta dies before it could send them.
            qemuIo(pair.nbdUri("beta"), "write -P 0xbe 0 4M");
            qemuIo(pair.nbdUri("alpha"), "write -P 0xa1 8M 4M");
            DaemonProcesses.kill(beta);
            pair.proxy.restore();
            beta = daemons.start(betaConfig, "beta-restarted");
            daemons.awaitStatus(pair.betaAdmin, TwoWayFaultTest::settled, 60);
            daemons.awaitStatus(pair.alphaAdmin, TwoWayFaultTest::settled, 60);
            final JsonNode b = daemons.status(pair.betaAdmin);
            assertThat(b.path("twoWay").path("appliedBlocks").asLong()).as("beta got alpha's 4 MiB").isEqualTo(1024);
            daemons.close();
            final byte[] a = Files.readAllBytes(pair.image("alpha"));
            assertThat(Files.readAllBytes(pair.image("beta"))).isEqualTo(a);
            for (int i = 0; i < 4 << 20; i++)
            {
                if (a[i] != (byte)0xbe || a[(8 << 20) + i] != (byte)0xa1)
                {
                    throw new AssertionError("byte " + i + " of a write is missing after the kill and restart");
                }
            }
        }
    }

    private static boolean settled(final JsonNode v)
    {
        return "streaming".equals(v.path("replication").asText()) && "up-to-date".equals(v.path("disk").asText())
            && v.path("dirtyBytes").asLong() == 0 && v.path("inFlightBytes").asLong() == 0;
    }

    private static void qemuIo(final String uri, final String command)
    {
        final NbdTestSupport.ToolResult r = NbdTestSupport.run(120, "qemu-io", "-f", "raw", "-c", command, uri);
        assertThat(r.ok()).as(r.describe()).isTrue();
    }
}
