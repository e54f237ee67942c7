package io.doppel.nbd;

import io.doppel.nbd.NbdTestSupport.NodePair;
import io.doppel.nbd.NbdTestSupport.ToolResult;
import io.doppel.replication.TestCluster;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static io.doppel.nbd.NbdTestSupport.run;
import static io.doppel.nbd.NbdTestSupport.toolExists;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * qemu-io, QEMU's own NBD client, against both exports over Unix sockets: unaligned, FUA, zero,
 * discard and asynchronous writes on the primary read back as written there and, once replicated, on
 * the standby's read-only export; the image files hold exactly those changes and nothing else; the
 * standby export refuses to be written.
 */
class NbdQemuIoTest
{
    private static final long SIZE = 64L << 20;
    private static final int K = 1 << 10;
    private static final int M = 1 << 20;

    @TempDir
    Path dir;

    @Test
    void patternWritesOnThePrimaryReadBackOnBothExports() throws Exception
    {
        Assumptions.assumeTrue(toolExists("qemu-io"), "SKIPPED: qemu-io not installed (apt-get install qemu-utils)");
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 21);
        final byte[] expected = Files.readAllBytes(cluster.alphaImage);
        try (NodePair nodes = NodePair.start(cluster, true, true))
        {
            nodes.awaitInSync(60); // streaming first (writes during the sync: NbdFioTest)
            final String primary = nodes.primaryUri();
            final ToolResult write = run(60, "qemu-io", "-f", "raw", primary,
                "-c", "write -P 0xab 4097 1M",           // unaligned at both ends
                "-c", "write -f -P 0xcd 8M 64k",         // FUA
                "-c", "write -P 0x77 12M 256k",
                "-c", "write -z 12M 256k",               // WRITE_ZEROES over data
                "-c", "write -P 0x66 20M 1M",
                "-c", "discard 20M 1M",                  // TRIM over data
                "-c", "aio_write -P 0x11 16M 64k",
                "-c", "aio_flush",
                "-c", "flush");
            assertThat(write.exit()).as(write.describe()).isZero();
            assertThat(write.output()).as(write.describe())
                .contains("wrote 1048576/1048576 bytes at offset 4097")
                .contains("wrote 65536/65536 bytes at offset 8388608")
                .contains("wrote 262144/262144 bytes at offset 12582912")
                .contains("discard 1048576/1048576 bytes at offset 20971520")
                .contains("wrote 65536/65536 bytes at offset 16777216")
                .doesNotContainIgnoringCase("error")
                .doesNotContainIgnoringCase("failed");
            fill(expected, 4097, M, 0xab);
            fill(expected, 8 * M, 64 * K, 0xcd);
            fill(expected, 12 * M, 256 * K, 0);
            fill(expected, 20 * M, M, 0);
            fill(expected, 16 * M, 64 * K, 0x11);

            final String[] reads = {
                "-c", "read -P 0xab 4097 1M",
                "-c", "read -P 0xcd 8M 64k",
                "-c", "read -P 0 12M 256k",
                "-c", "read -P 0 20M 1M",
                "-c", "read -P 0x11 16M 64k"};
            assertReadsBack(run(60, concat(new String[] {"qemu-io", "-f", "raw", "-r", primary}, reads)));
            nodes.primary().flush();
            assertFileEquals(cluster.alphaImage, expected, "primary image");

            // The requests qemu-io sent are counted by command, with their latency in histogram buckets.
            final String metrics = java.net.http.HttpClient.newHttpClient().send(java.net.http.HttpRequest.newBuilder(
                java.net.URI.create("http://127.0.0.1:" + cluster.alphaAdmin + "/metrics")).build(),
                java.net.http.HttpResponse.BodyHandlers.ofString()).body();
            assertThat(requests(metrics, "write")).as(metrics).isGreaterThanOrEqualTo(4);
            assertThat(requests(metrics, "write_zeroes")).isGreaterThanOrEqualTo(1);
            assertThat(requests(metrics, "trim")).isGreaterThanOrEqualTo(1);
            assertThat(requests(metrics, "flush")).isGreaterThanOrEqualTo(2);
            assertThat(requests(metrics, "read")).isGreaterThanOrEqualTo(5);
            assertThat(metrics).containsPattern("doppel_nbd_requests_seconds_bucket\\{[^}]*command=\"write\"[^}]*"
                + "le=\"0\\.01\"");

            nodes.awaitInSync(30);
            assertReadsBack(run(60, concat(new String[] {"qemu-io", "-f", "raw", "-r", nodes.standbyUri()}, reads)));
            nodes.flushBoth();
            assertFileEquals(cluster.betaImage, expected, "standby image");
        }
    }

    @Test
    void standbyExportRefusesWrites() throws Exception
    {
        Assumptions.assumeTrue(toolExists("qemu-io"), "SKIPPED: qemu-io not installed (apt-get install qemu-utils)");
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 22);
        try (NodePair nodes = NodePair.start(cluster, true, true))
        {
            nodes.awaitInSync(30);
            nodes.flushBoth();
            final String before = MixedImage.hash(cluster.betaImage);
            assertThat(before).isEqualTo(MixedImage.hash(cluster.alphaImage));

            final ToolResult write = run(60, "qemu-io", "-f", "raw", nodes.standbyUri(),
                "-c", "write -P 0x99 0 64k", "-c", "write -z 1M 64k", "-c", "discard 2M 64k", "-c", "flush");
            // Either the read-write open is refused (the export says it is read-only) or each write fails.
            final boolean refused = write.exit() != 0 || write.output().contains("Permission denied")
                || write.output().contains("Operation not permitted") || write.output().contains("read-only")
                || write.output().contains("read only");
            assertThat(refused).as("qemu-io writes to the read-only standby export must fail; " + write.describe())
                .isTrue();
            assertThat(write.output()).as(write.describe()).doesNotContain("wrote 65536/65536");

            nodes.beta.standby("vm1").volume().flush();
            assertThat(MixedImage.hash(cluster.betaImage)).as("standby image after the refused writes; "
                + write.describe()).isEqualTo(before);
            // The export still serves reads.
            final ToolResult read = run(60, "qemu-io", "-f", "raw", "-r", nodes.standbyUri(), "-c", "read 0 64k");
            assertThat(read.exit()).as(read.describe()).isZero();
            assertThat(read.output()).as(read.describe()).contains("read 65536/65536 bytes at offset 0");
        }
    }

    /** The count of NBD requests of {@code command} in a scrape of /metrics. */
    private static double requests(final String metrics, final String command)
    {
        for (final String line : metrics.split("\n"))
        {
            if (line.startsWith("doppel_nbd_requests_seconds_count{") && line.contains("command=\"" + command + "\""))
            {
                return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        throw new AssertionError("no doppel_nbd_requests_seconds_count for " + command + " in\n" + metrics);
    }

    private static void assertReadsBack(final ToolResult read)
    {
        assertThat(read.exit()).as(read.describe()).isZero();
        assertThat(read.output()).as(read.describe())
            .doesNotContain("Pattern verification failed")
            .contains("read 1048576/1048576 bytes at offset 4097")
            .contains("read 65536/65536 bytes at offset 8388608")
            .contains("read 262144/262144 bytes at offset 12582912")
            .contains("read 1048576/1048576 bytes at offset 20971520")
            .contains("read 65536/65536 bytes at offset 16777216");
    }

    /** The file is byte-for-byte {@code expected}: the writes landed where asked and nowhere else. */
    static void assertFileEquals(final Path file, final byte[] expected, final String what) throws IOException
    {
        final byte[] actual = Files.readAllBytes(file);
        assertThat(actual.length).as(what + " length").isEqualTo(expected.length);
        final int at = Arrays.mismatch(actual, expected);
        assertThat(at).as(what + " differs from the expected content at offset " + at
            + (at >= 0 ? " (got 0x" + Integer.toHexString(actual[at] & 0xff) + ", expected 0x"
                + Integer.toHexString(expected[at] & 0xff) + ")" : "")).isEqualTo(-1);
    }

    private static void fill(final byte[] image, final int offset, final int length, final int value)
    {
        Arrays.fill(image, offset, offset + length, (byte)value);
    }

    private static String[] concat(final String[] a, final String[] b)
    {
        final List<String> all = new ArrayList<>(Arrays.asList(a));
        all.addAll(Arrays.asList(b));
        return all.toArray(new String[0]);
    }
}
