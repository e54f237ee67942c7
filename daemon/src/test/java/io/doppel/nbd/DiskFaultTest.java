package io.doppel.nbd;

import com.fasterxml.jackson.databind.JsonNode;
import io.doppel.replication.DaemonProcesses;
import io.doppel.replication.TestCluster;
import io.doppel.tools.LoopbackPorts;
import io.doppel.tools.MixedImage;
import io.doppel.tools.SmallFileSystem;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import io.doppel.storage.DiskWriteException;
import io.doppel.storage.Volume;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Disk faults for real: an image on a small ext4 file system that runs out of space (a ballast file takes
 * the room; deleting it clears the fault). On the standby the copy goes inconsistent, nothing more is
 * acknowledged and the primary keeps the blocks dirty, then both converge once there is room again. On the
 * primary the NBD client gets ENOSPC for what was not written, and every write answered 0 is there.
 */
class DiskFaultTest
{
    private static final long SIZE = 64L << 20;
    private static final int ENOSPC = 28;

    @TempDir
    Path dir;

    @Test
    void standbyDiskFullGoesInconsistentKeepsBlocksDirtyAndConvergesOnceCleared() throws Exception
    {
        try (SmallFileSystem fs = SmallFileSystem.mount(dir, "standby-fs", 48L << 20))
        {
            final TestCluster cluster = new TestCluster(dir, SIZE);
            final int nbdPort = LoopbackPorts.free(1)[0];
            cluster.alphaNbd = "127.0.0.1:" + nbdPort;
            cluster.betaImage = fs.path().resolve("vm1.img"); // metadata stays in beta's data-dir
            try (DaemonProcesses daemons = new DaemonProcesses(dir);
                 RawNbdClient client = startAndOpen(daemons, cluster, nbdPort))
            {
                final SplittableRandom random = new SplittableRandom(71);
                writeRandom(client, random, 0, 8 << 20, 64 << 10, new LinkedHashMap<>());
                daemons.awaitStatus(cluster.alphaAdmin, DaemonProcesses::inSync, 60);

                fs.fillLeaving(6L << 20);
                // 24 MiB of 4 KiB and 64 KiB writes: the primary has room, the standby has 6 MiB
                final Map<Long, Integer> results = new LinkedHashMap<>();
                writeRandom(client, random, 16L << 20, 24 << 20, 4 << 10, results);
                assertThat(results.values()).as("every write on the primary succeeds").containsOnly(0);

                final JsonNode beta = daemons.awaitStatus(cluster.betaAdmin,
                    v -> "inconsistent".equals(v.path("disk").asText()) && v.path("diskErrors").asLong() > 0, 60);
                assertThat(beta.path("lastError").asText()).as("the standby names the image and the shortage")
                    .contains(cluster.betaImage.toString()).contains("no space left").contains("bytes free");
                Thread.sleep(3000); // the primary keeps retrying; the blocks must stay owed
                final JsonNode alpha = daemons.status(cluster.alphaAdmin);
                assertThat(alpha.path("dirtyBytes").asLong() + alpha.path("inFlightBytes").asLong())
                    .as("blocks the standby could not write stay dirty on the primary: " + alpha).isGreaterThan(0);
                assertThat(alpha.path("disk").asText()).isNotEqualTo("up-to-date");
                assertThat(daemons.status(cluster.betaAdmin).path("disk").asText()).as("retries fail again").isIn("inconsistent", "syncing");
                assertThat(Files.readString(dir.resolve("beta.log"))).contains("cannot write this copy")
                    .contains(cluster.betaImage.toString());

                fs.clear();
                daemons.awaitStatus(cluster.alphaAdmin, DaemonProcesses::inSync, 120);
                assertThat(daemons.status(cluster.betaAdmin).path("disk").asText()).isEqualTo("up-to-date");
                assertThat(MixedImage.hash(cluster.betaImage)).as("standby converged after the fault cleared")
                    .isEqualTo(MixedImage.hash(cluster.alphaImage));
            }
        }
    }

    @Test
    void primaryDiskFullAnswersEnospcAndEveryAcknowledgedWriteIsThere() throws Exception
    {
        try (SmallFileSystem fs = SmallFileSystem.mount(dir, "primary-fs", 48L << 20))
        {
            final TestCluster cluster = new TestCluster(dir, SIZE);
            final int nbdPort = LoopbackPorts.free(1)[0];
            cluster.alphaNbd = "127.0.0.1:" + nbdPort;
            cluster.alphaImage = fs.path().resolve("vm1.img");
            try (DaemonProcesses daemons = new DaemonProcesses(dir);
                 RawNbdClient client = startAndOpen(daemons, cluster, nbdPort))
            {
                fs.fillLeaving(4L << 20);
                final SplittableRandom random = new SplittableRandom(72);
                final Map<Long, byte[]> written = new LinkedHashMap<>();
                final Map<Long, Integer> results = new LinkedHashMap<>();
                try
                {
                    writeRandom(client, random, 0, 12 << 20, 4 << 10, results, written);
                }
                catch (final java.io.IOException e)
                {
                    throw new AssertionError("NBD client failed after " + results.size() + " writes: " + e
                        + "\nlogs:\n" + daemons.logs(), e);
                }
                assertThat(results.values()).as("writes past the free space fail with ENOSPC, the rest succeed")
                    .contains(0, ENOSPC).containsOnly(0, ENOSPC);
                final JsonNode alpha = daemons.status(cluster.alphaAdmin);
                assertThat(alpha.path("diskErrors").asLong()).isPositive();
                assertThat(Files.readString(dir.resolve("alpha.log"))).as("the primary's log names the image")
                    .contains("failed: writing").contains(cluster.alphaImage.toString()).contains("no space left");

                fs.clear();
                for (final Map.Entry<Long, Integer> r : results.entrySet())
                {
                    if (r.getValue() != 0) // the client writes again what failed, as a VM would after a pause
                    {
                        final byte[] data = written.get(r.getKey());
                        assertThat(client.simpleReply(client.request(0, RawNbdClient.CMD_WRITE, r.getKey(),
                            data.length, data))).isZero();
                    }
                }
                for (final Map.Entry<Long, byte[]> w : written.entrySet())
                {
                    assertThat(client.read(w.getKey(), w.getValue().length)).as("block at " + w.getKey())
                        .isEqualTo(w.getValue());
                }
                daemons.awaitStatus(cluster.alphaAdmin, DaemonProcesses::inSync, 120);
                assertThat(MixedImage.hash(cluster.betaImage)).isEqualTo(MixedImage.hash(cluster.alphaImage));
            }
        }
    }

    @Test
    void aStoreIntoTheMappingOnAFullDiskFailsAtOnceWithThePath() throws Exception
    {
        try (SmallFileSystem fs = SmallFileSystem.mount(dir, "volume-fs", 32L << 20))
        {
            final Path image = fs.path().resolve("vol.img");
            try (Volume volume = Volume.open(image, 16L << 20))
            {
                fs.fillLeaving(0);
                for (final ByteBuffer src : new ByteBuffer[] {ByteBuffer.allocate(4096), ByteBuffer.allocateDirect(4096),
                    ByteBuffer.allocateDirect(1 << 20)})
                {
                    new SplittableRandom(73).nextBytes(src.hasArray() ? src.array() : new byte[0]);
                    final String before = MixedImage.hash(image);
                    assertThatThrownBy(() -> volume.write(8L << 20, src.clear()))
                        .as("a " + src + " into a hole of a full file system")
                        .isInstanceOfSatisfying(DiskWriteException.class, e -> assertThat(e.noSpace()).isTrue())
                        .hasMessageContaining(image.toString()).hasMessageContaining("no space left");
                    assertThat(MixedImage.hash(image)).as("nothing written").isEqualTo(before);
                }
                fs.clear();
                volume.write(8L << 20, ByteBuffer.wrap(new byte[] {1, 2, 3}));
                volume.flush();
            }
        }
    }

    private static RawNbdClient startAndOpen(final DaemonProcesses daemons, final TestCluster cluster,
        final int nbdPort) throws Exception
    {
        daemons.start(cluster.betaConfig(), "beta");
        daemons.start(cluster.alphaConfig(), "alpha");
        daemons.awaitStatus(cluster.alphaAdmin, DaemonProcesses::inSync, 60);
        return RawNbdClient.open(nbdPort, "vm1");
    }

    private static void writeRandom(final RawNbdClient client, final SplittableRandom random, final long from,
        final int bytes, final int smallest, final Map<Long, Integer> results) throws Exception
    {
        writeRandom(client, random, from, bytes, smallest, results, new LinkedHashMap<>());
    }

    /** Random bytes over {@code [from, from+bytes)}, in writes of 64 KiB and {@code smallest} in turn. */
    private static void writeRandom(final RawNbdClient client, final SplittableRandom random, final long from,
        final int bytes, final int smallest, final Map<Long, Integer> results, final Map<Long, byte[]> written)
        throws Exception
    {
        long at = from;
        int i = 0;
        while (at < from + bytes)
        {
            final byte[] data = new byte[(i++ & 1) == 0 ? 64 << 10 : smallest];
            random.nextBytes(data);
            results.put(at, client.simpleReply(client.request(0, RawNbdClient.CMD_WRITE, at, data.length, data)));
            written.put(at, data);
            at += data.length;
        }
    }
}
