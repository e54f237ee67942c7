package io.doppel.replication;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.tools.LinkProxy;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.SplittableRandom;

import static io.doppel.replication.StreamingReplicationTest.assertIdentical;
import static io.doppel.replication.StreamingReplicationTest.awaitInSync;
import static io.doppel.replication.StreamingReplicationTest.awaitTrue;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * The link between the nodes is cut (connections reset by a proxy, both daemons keep running) while the
 * primary streams, and again in the middle of the resync that follows. Each time it reconnects, resyncs
 * from the dirty map, and the images end identical; the bytes sent stay close to what differed, so a
 * resync cut half way resumes instead of starting over.
 */
class LinkCutTest
{
    private static final long SIZE = 512L << 20;
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    @Test
    void cutsDuringStreamingAndDuringResyncConvergeAndResendLittle() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 41);
        Files.copy(cluster.alphaImage, cluster.betaImage, StandardCopyOption.REPLACE_EXISTING);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             LinkProxy proxy = LinkProxy.start(cluster.betaListen))
        {
            cluster.alphaPeerPort = proxy.port();
            try (DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
            {
                final PrimaryVolume vm1 = alpha.primary("vm1");
                awaitInSync(vm1, 120);
                final SplittableRandom random = new SplittableRandom(42);

                // 1. Cut while streaming a burst of writes; more writes land while the link is down.
                final Thread burst = new Thread(() -> writeRandomBlocks(vm1, 4096, random.split()));
                burst.start();
                Thread.sleep(20);
                proxy.cut();
                burst.join();
                awaitTrue(() -> !vm1.state().connected(), 30);
                writeRandomBlocks(vm1, 2048, random.split());
                final long differing = vm1.dirtyBytes();
                assertThat(vm1.state().inFlightBytes()).as("nothing in flight once the link is down").isZero();
                assertThat(differing).isGreaterThanOrEqualTo(2048L * BLOCK / 2).isLessThan(SIZE / 4);
                long sentBefore = vm1.state().bytesSent();
                proxy.restore();
                awaitInSync(vm1, 120);
                assertThat(vm1.state().syncKind()).isEqualTo("dirty-map");
                final long sent = vm1.state().bytesSent() - sentBefore;
                System.out.printf("cut while streaming: %d bytes differed, resync sent %d%n", differing, sent);
                assertThat(sent).as("resync after a cut while streaming").isLessThanOrEqualTo(differing * 12 / 10 + (64 << 10));
                assertIdentical(cluster, alpha, beta);

                // 2. A large difference; cut the resync half way, then let it finish.
                proxy.cut();
                awaitTrue(() -> !vm1.state().connected(), 30);
                writeRandomBlocks(vm1, 192 << 20 >> 12, random.split());
                final long bigDiffering = vm1.dirtyBytes();
                sentBefore = vm1.state().bytesSent();
                final long connects = vm1.state().connects();
                proxy.restore();
                // Cut once a quarter of the difference is acknowledged (not only sent): that part must be kept.
                awaitTrue(() -> vm1.state().connects() > connects && (vm1.dirtyBytes() + vm1.state().inFlightBytes()
                    < bigDiffering * 3 / 4 || vm1.state().replication() == VolumeState.Replication.STREAMING), 60);
                proxy.cut();
                awaitTrue(() -> !vm1.state().connected(), 30);
                final long left = vm1.dirtyBytes();
                proxy.restore();
                awaitInSync(vm1, 120);
                final long bigSent = vm1.state().bytesSent() - sentBefore;
                System.out.printf("cut during resync: %d bytes differed, %d still dirty after the cut, both resyncs sent %d%n",
                    bigDiffering, left, bigSent);
                assertThat(left).as("the cut resync made progress that was kept").isLessThan(bigDiffering);
                // What was in flight at the cut (TCP, the proxy, the standby's apply queue) is sent again.
                assertThat(bigSent).as("bytes sent by the cut resync and its resumption")
                    .isLessThanOrEqualTo(bigDiffering * 12 / 10);
                assertIdentical(cluster, alpha, beta);
                assertThat(proxy.connectionsAccepted()).isGreaterThanOrEqualTo(3);
            }
        }
    }

    /** Writes {@code count} random 4 KiB blocks (incompressible) at random block offsets. */
    private static void writeRandomBlocks(final PrimaryVolume vm1, final int count, final SplittableRandom random)
    {
        final byte[] block = new byte[BLOCK];
        for (int i = 0; i < count; i++)
        {
            random.nextBytes(block);
            vm1.write(random.nextLong(SIZE / BLOCK) * BLOCK, ByteBuffer.wrap(block));
        }
    }
}
