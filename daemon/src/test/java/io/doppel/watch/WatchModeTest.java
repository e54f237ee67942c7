package io.doppel.watch;

import com.fasterxml.jackson.databind.JsonNode;
import io.doppel.replication.DaemonProcesses;
import io.doppel.replication.TestCluster;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Watch mode against real daemons in separate processes: another program (dd, qemu-io, a writer thread)
 * writes the primary's image file; the standby converges byte-identical, the bytes sent follow the changed
 * blocks, an unchanged file costs no reads, and a standby is never called up to date while a writer is
 * still changing the file.
 */
class WatchModeTest
{
    private static final long SIZE = 64L << 20;
    private static final int BLOCK = 4096;
    @TempDir
    Path dir;
    private DaemonProcesses daemons;

    @BeforeEach
    void daemons()
    {
        daemons = new DaemonProcesses(dir);
    }

    @AfterEach
    void killAll()
    {
        daemons.close();
    }

    private TestCluster watchedCluster(final long size) throws IOException
    {
        final TestCluster cluster = new TestCluster(dir, size);
        cluster.alphaVolumeExtra = "source = \"watch\"\nwatch-interval = \"200ms\"\nwatch-rate = \"1GiB\"\n";
        return cluster;
    }

    private JsonNode startAndSync(final TestCluster cluster) throws Exception
    {
        daemons.start(cluster.betaConfig(), "beta");
        daemons.start(cluster.alphaConfig(), "alpha");
        return awaitConverged(cluster, 0, 1);
    }

    /** In sync, and a scan that started after {@code scansBefore} settled the file. */
    private JsonNode awaitConverged(final TestCluster cluster, final long scansBefore) throws Exception
    {
        return awaitConverged(cluster, scansBefore, 2);
    }

    /** As above, after at least {@code newScans} scans (a change takes two: one finds it, one finds it settled). */
    private JsonNode awaitConverged(final TestCluster cluster, final long scansBefore, final int newScans)
        throws Exception
    {
        return daemons.awaitStatus(cluster.alphaAdmin, v -> DaemonProcesses.inSync(v)
            && v.path("watch").path("quiet").asBoolean()
            && v.path("watch").path("scans").asLong() >= scansBefore + newScans, 120);
    }

    private void assertIdentical(final TestCluster cluster) throws Exception
    {
        daemons.awaitStatus(cluster.betaAdmin, v -> "up-to-date".equals(v.path("disk").asText()), 30);
        assertThat(MixedImage.hash(cluster.betaImage)).as("standby image").isEqualTo(MixedImage.hash(cluster.alphaImage));
    }

    @Test
    void ddIntoWatchedImageShipsOnlyTheChangedBlocks() throws Exception
    {
        final TestCluster cluster = watchedCluster(SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 41);
        final JsonNode synced = startAndSync(cluster);
        assertThat(synced.path("source").asText()).isEqualTo("watch");
        assertIdentical(cluster);

        final SplittableRandom random = new SplittableRandom(42);
        final List<Long> blocks = new ArrayList<>();
        while (blocks.size() < 20)
        {
            final long b = random.nextLong(SIZE / BLOCK);
            if (!blocks.contains(b))
            {
                blocks.add(b);
            }
        }
        for (final long b : blocks)
        {
            run("dd", "if=/dev/urandom", "of=" + cluster.alphaImage, "bs=4096", "count=1", "seek=" + b,
                "conv=notrunc", "status=none");
        }
        final JsonNode after = awaitConverged(cluster, synced.path("watch").path("scans").asLong());
        assertIdentical(cluster);
        final long blocksSent = after.path("blocksSent").asLong() - synced.path("blocksSent").asLong();
        final long bytesSent = after.path("bytesSent").asLong() - synced.path("bytesSent").asLong();
        assertThat(blocksSent).as("blocks sent for 20 changed blocks").isBetween(20L, 40L);
        assertThat(bytesSent).as("bytes sent for 20 changed 4 KiB blocks").isGreaterThan(20L * BLOCK / 2)
            .isLessThan(40L * BLOCK + 64 * 1024);
        assertThat(after.path("watch").path("changedBlocks").asLong()
            - synced.path("watch").path("changedBlocks").asLong()).isGreaterThanOrEqualTo(20);
        assertThat(after.path("watch").path("events").asLong()).as("inotify events").isGreaterThan(0);

        // An event that changes nothing (touch): outdated for a moment, up to date again, nothing sent.
        run("touch", cluster.alphaImage.toString());
        final JsonNode touched = awaitConverged(cluster, after.path("watch").path("scans").asLong(), 1);
        assertThat(touched.path("watch").path("events").asLong()).isGreaterThan(after.path("watch").path("events")
            .asLong());
        assertThat(touched.path("blocksSent").asLong()).isEqualTo(after.path("blocksSent").asLong());
    }

    @Test
    void qemuIoWritesIntoWatchedImageConverge() throws Exception
    {
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/qemu-io")), "qemu-io not installed (qemu-utils)");
        final TestCluster cluster = watchedCluster(SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 51);
        final JsonNode synced = startAndSync(cluster);
        run("qemu-io", "-f", "raw", "-c", "write -P 0xab 1M 64k", "-c", "write -P 0xcd 40M 8k", "-c",
            "write -z 50M 128k", cluster.alphaImage.toString());
        final JsonNode after = awaitConverged(cluster, synced.path("watch").path("scans").asLong());
        assertIdentical(cluster);
        final long blocksSent = after.path("blocksSent").asLong() - synced.path("blocksSent").asLong();
        // 16 + 2 + 32 blocks changed (the zeroed range may already have been partly zero)
        assertThat(blocksSent).as("blocks sent").isBetween(18L, 100L);
        assertThat(after.path("bytesSent").asLong() - synced.path("bytesSent").asLong()).isLessThan(1L << 20);
    }

    @Test
    void unchangedLargeFileCostsNoReads() throws Exception
    {
        final long size = 2L << 30;
        final TestCluster cluster = watchedCluster(size);
        // Sparse, with some data: holes are never read; the data is read once per scan.
        try (FileChannel ch = FileChannel.open(cluster.alphaImage, StandardOpenOption.CREATE, StandardOpenOption.WRITE))
        {
            final ByteBuffer data = ByteBuffer.allocate(1 << 20);
            new SplittableRandom(7).nextBytes(data.array());
            for (long at = 0; at < size; at += 256L << 20)
            {
                ch.write(data.clear(), at);
            }
            ch.truncate(size);
            ch.write(ByteBuffer.allocate(1), size - 1);
        }
        final JsonNode synced = startAndSync(cluster);
        Thread.sleep(3_000); // 15 watch-intervals
        final JsonNode later = daemons.status(cluster.alphaAdmin);
        final JsonNode w0 = synced.path("watch");
        final JsonNode w1 = later.path("watch");
        assertThat(w1.path("scans").asLong()).as("scans of an unchanged file").isEqualTo(w0.path("scans").asLong());
        assertThat(w1.path("bytesRead").asLong()).as("bytes read").isEqualTo(w0.path("bytesRead").asLong());
        assertThat(w1.path("skippedCycles").asLong() - w0.path("skippedCycles").asLong()).isGreaterThanOrEqualTo(5);
        assertThat(later.path("bytesSent").asLong()).isEqualTo(synced.path("bytesSent").asLong());
        assertThat(later.path("disk").asText()).isEqualTo("up-to-date");
        // And a scan reads only the data extents, not the 2 GiB.
        assertThat(w0.path("bytesRead").asLong() / w0.path("scans").asLong()).isLessThan(64L << 20);
        assertIdentical(cluster);
    }

    @Test
    void neverUpToDateWhileAWriterRunsThenConverges() throws Exception
    {
        final TestCluster cluster = watchedCluster(SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 61);
        final JsonNode synced = startAndSync(cluster);
        final AtomicBoolean stop = new AtomicBoolean();
        final long[] writes = new long[1];
        final Thread writer = new Thread(() ->
        {
            final SplittableRandom random = new SplittableRandom(62);
            final byte[] block = new byte[BLOCK];
            try (RandomAccessFile f = new RandomAccessFile(cluster.alphaImage.toFile(), "rw"))
            {
                while (!stop.get())
                {
                    random.nextBytes(block);
                    f.seek(random.nextLong(SIZE / BLOCK) * BLOCK);
                    f.write(block);
                    writes[0]++;
                    Thread.sleep(2);
                }
            }
            catch (final IOException | InterruptedException e)
            {
                throw new IllegalStateException(e);
            }
        });
        writer.start();
        Thread.sleep(300); // the first events reach the watcher
        int polls = 0;
        final long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(4);
        while (System.nanoTime() < end)
        {
            final JsonNode v = daemons.status(cluster.alphaAdmin);
            assertThat(v.path("disk").asText()).as("disk state while a writer changes the file: %s", v)
                .isNotEqualTo("up-to-date");
            assertThat(v.path("watch").path("quiet").asBoolean()).isFalse();
            polls++;
            Thread.sleep(50);
        }
        stop.set(true);
        writer.join();
        assertThat(polls).isGreaterThan(20);
        assertThat(writes[0]).isGreaterThan(100);
        final JsonNode after = awaitConverged(cluster, synced.path("watch").path("scans").asLong());
        assertThat(after.path("watch").path("scans").asLong()).isGreaterThan(synced.path("watch").path("scans")
            .asLong() + 2);
        assertIdentical(cluster);
    }

    private static void run(final String... command) throws Exception
    {
        final Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        final String out = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).as("%s: %s", String.join(" ", command), out).isZero();
    }
}
