package io.doppel.nbd;

import io.doppel.nbd.NbdTestSupport.NodePair;
import io.doppel.nbd.NbdTestSupport.ToolResult;
import io.doppel.replication.TestCluster;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;

import static io.doppel.nbd.NbdTestSupport.run;
import static io.doppel.nbd.NbdTestSupport.toolExists;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * nbdcopy (libnbd, several connections and many requests in flight) copies 128 MiB of random data into
 * the primary export over TCP; the standby ends up with the same bytes, and qemu-img compares the two
 * exports (the standby's over a Unix socket) as identical.
 */
class NbdCopyTest
{
    private static final long SIZE = 128L << 20;

    @TempDir
    Path dir;

    @Test
    void nbdcopyIntoThePrimaryReplicatesByteForByte() throws Exception
    {
        Assumptions.assumeTrue(toolExists("nbdcopy"), "SKIPPED: nbdcopy not installed (apt-get install libnbd-bin)");
        Assumptions.assumeTrue(toolExists("qemu-img"), "SKIPPED: qemu-img not installed (apt-get install qemu-utils)");
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 31); // something to overwrite, and a sync to do first
        final Path source = dir.resolve("random.img");
        writeRandom(source, SIZE, 32);
        final String sourceHash = MixedImage.hash(source);
        try (NodePair nodes = NodePair.start(cluster, false, true))
        {
            nodes.awaitInSync(60); // streaming first (writes during the sync: NbdFioTest)
            final ToolResult copy = run(120, "nbdcopy", source.toString(), nodes.primaryUri());
            assertThat(copy.exit()).as(copy.describe()).isZero();

            nodes.awaitInSync(60);
            nodes.flushBoth();
            assertThat(MixedImage.hash(cluster.alphaImage)).as("primary image after nbdcopy; " + copy.describe())
                .isEqualTo(sourceHash);
            assertThat(MixedImage.hash(cluster.betaImage)).as("standby image").isEqualTo(sourceHash);

            final ToolResult compare = run(120, "qemu-img", "compare", "-f", "raw", "-F", "raw",
                nodes.primaryUri(), nodes.standbyUri());
            assertThat(compare.exit()).as(compare.describe()).isZero();
            assertThat(compare.output()).as(compare.describe()).contains("Images are identical");
        }
    }

    static void writeRandom(final Path file, final long size, final long seed) throws IOException
    {
        final SplittableRandom random = new SplittableRandom(seed);
        final ByteBuffer chunk = ByteBuffer.allocate(1 << 20);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
            StandardOpenOption.TRUNCATE_EXISTING))
        {
            for (long pos = 0; pos < size; pos += chunk.capacity())
            {
                chunk.clear();
                while (chunk.remaining() >= 8)
                {
                    chunk.putLong(random.nextLong());
                }
                chunk.flip();
                while (chunk.hasRemaining())
                {
                    ch.write(chunk);
                }
            }
        }
    }
}
