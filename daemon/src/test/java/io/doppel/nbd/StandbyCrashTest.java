package io.doppel.nbd;

import com.fasterxml.jackson.databind.JsonNode;
import io.doppel.replication.DaemonProcesses;
import io.doppel.replication.TestCluster;
import io.doppel.tools.LoopbackPorts;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The standby is SIGKILLed in the middle of a resync from the dirty map. It comes back saying its copy is
 * inconsistent, the resync resumes (again from the dirty map, not a whole-volume compare, and without
 * sending everything again), and neither side reports the copy up to date before it is.
 */
class StandbyCrashTest
{
    private static final long SIZE = 512L << 20;
    private static final int CHUNK = 64 << 10;

    @TempDir
    Path dir;

    @Test
    void killedMidResyncResumesAndIsNeverReportedUpToDateEarly() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        final int nbdPort = LoopbackPorts.free(1)[0];
        cluster.alphaNbd = "127.0.0.1:" + nbdPort;
        MixedImage.create(cluster.alphaImage, SIZE, 61);
        Files.copy(cluster.alphaImage, cluster.betaImage, StandardCopyOption.REPLACE_EXISTING);
        try (DaemonProcesses daemons = new DaemonProcesses(dir))
        {
            Process beta = daemons.start(cluster.betaConfig(), "beta-0");
            daemons.start(cluster.alphaConfig(), "alpha");
            daemons.awaitStatus(cluster.alphaAdmin, DaemonProcesses::inSync, 120);
            DaemonProcesses.kill(beta);
            daemons.awaitStatus(cluster.alphaAdmin, v -> !v.path("peer").path("connected").asBoolean(), 30);

            // 192 MiB of scattered 64 KiB random writes while the standby is away (large next to what can be in
            // flight at the kill — socket buffers and the standby's apply queue — which is sent again)
            final SplittableRandom random = new SplittableRandom(62);
            final byte[] chunk = new byte[CHUNK];
            try (RawNbdClient c = RawNbdClient.open(nbdPort, "vm1"))
            {
                for (int i = 0; i < (192 << 20) / CHUNK; i++)
                {
                    random.nextBytes(chunk);
                    final long cookie = c.request(0, RawNbdClient.CMD_WRITE, random.nextLong(SIZE / CHUNK) * CHUNK, CHUNK,
                        chunk);
                    assertThat(c.simpleReply(cookie)).isZero();
                }
            }
            final long differing = daemons.status(cluster.alphaAdmin).path("dirtyBytes").asLong();
            assertThat(differing).isGreaterThan(96L << 20);

            // Watch both sides for as long as the copies differ.
            final List<String> early = new CopyOnWriteArrayList<>();
            final AtomicBoolean watching = new AtomicBoolean(true);
            final Thread watcher = new Thread(() -> watch(daemons, cluster, early, watching));
            watcher.start();

            beta = daemons.start(cluster.betaConfig(), "beta-1");
            // Kill once a quarter of the difference is acknowledged (not only sent): that part must be kept.
            final JsonNode midway = daemons.awaitStatus(cluster.alphaAdmin, v -> "syncing".equals(v.path("replication").asText())
                && v.path("dirtyBytes").asLong() + v.path("inFlightBytes").asLong() < differing * 3 / 4, 120);
            final long sentBefore = midway.path("bytesSent").asLong() - midway.path("syncBytesSent").asLong();
            DaemonProcesses.kill(beta);
            final JsonNode cut = daemons.awaitStatus(cluster.alphaAdmin, v -> !v.path("peer").path("connected").asBoolean(), 30);
            assertThat(cut.path("disk").asText()).isEqualTo("inconsistent");
            final long left = cut.path("dirtyBytes").asLong();

            daemons.start(cluster.betaConfig(), "beta-2");
            final JsonNode restarted = daemons.awaitStatus(cluster.betaAdmin, v -> true, 30);
            assertThat(restarted.path("disk").asText()).as("a standby killed mid-resync says so when it comes back")
                .isIn("inconsistent", "syncing");
            final JsonNode synced = daemons.awaitStatus(cluster.alphaAdmin, DaemonProcesses::inSync, 120);
            watching.set(false);
            watcher.join();
            assertThat(synced.path("sync").asText()).as("the resumed resync").isEqualTo("dirty-map");
            final long sent = synced.path("bytesSent").asLong() - sentBefore;
            System.out.printf("standby killed mid-resync: %d bytes differed, %d left after the kill, %d sent in all%n",
                differing, left, sent);
            assertThat(left).as("progress before the kill was kept").isLessThan(differing);
            // What was in flight at the kill is sent again: socket buffers, the standby's read-ahead (8 MiB) and
            // the blocks of epochs the primary had not yet seen acknowledged. 1.07-1.12x measured under load. (The
            // 1.33x once measured came from links the standby dropped mid-resync over a race in its frame apply,
            // each sending its in-flight epochs again; fixed.) A resync that started over would send more than
            // 1.6x the difference.
            assertThat(sent).as("bytes sent by both resyncs").isLessThanOrEqualTo(differing * 12 / 10);
            assertThat(early).as("status samples claiming up-to-date while blocks were still dirty").isEmpty();
            daemons.awaitStatus(cluster.betaAdmin, v -> "up-to-date".equals(v.path("disk").asText()), 30);
            assertThat(MixedImage.hash(cluster.betaImage)).isEqualTo(MixedImage.hash(cluster.alphaImage));
        }
    }

    /** Collects every status sample in which a side says up-to-date while the primary still has dirty blocks. */
    private static void watch(final DaemonProcesses daemons, final TestCluster cluster, final List<String> early,
        final AtomicBoolean watching)
    {
        try
        {
            while (watching.get())
            {
                final JsonNode standby = daemons.status(cluster.betaAdmin);
                final JsonNode primary = daemons.status(cluster.alphaAdmin);
                if (primary != null && primary.path("dirtyBytes").asLong() > 0)
                {
                    if ("up-to-date".equals(primary.path("disk").asText()))
                    {
                        early.add("primary: " + primary);
                    }
                    if (standby != null && "up-to-date".equals(standby.path("disk").asText()))
                    {
                        early.add("standby: " + standby);
                    }
                }
                Thread.sleep(20);
            }
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
    }
}
