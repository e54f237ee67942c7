package io.doppel.nbd;

import io.doppel.admin.AdminServer;
import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.replication.PrimaryVolume;
import io.doppel.replication.TestCluster;
import io.doppel.tools.LoopbackPorts;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * A planned failover with the operator verbs: promote is refused while the primary feeds the standby;
 * demote the primary, promote the standby; the promoted node's NBD export takes writes at once and
 * replicates them to the demoted node, whose export turned read-only; then back again.
 */
class FailoverTest
{
    private static final long SIZE = 32L << 20;

    @TempDir
    Path dir;

    @Test
    void demoteThenPromoteMovesThePrimaryAndItsNbdWrites() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        final int[] nbd = LoopbackPorts.free(2);
        cluster.alphaNbd = "127.0.0.1:" + nbd[0];
        cluster.betaNbd = "127.0.0.1:" + nbd[1];
        MixedImage.create(cluster.alphaImage, SIZE, 81);
        Files.copy(cluster.alphaImage, cluster.betaImage, StandardCopyOption.REPLACE_EXISTING);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            await(() -> alpha.primary("vm1").inSync(), 60);
            assertThatThrownBy(() -> beta.runVerb("vm1", "promote", Map.of()))
                .isInstanceOf(AdminServer.VerbException.class).hasMessageContaining("primary alpha is connected");
            assertThatThrownBy(() -> beta.runVerb("vm1", "demote", Map.of()))
                .isInstanceOf(AdminServer.VerbException.class).hasMessageContaining("already standby");

            // A client writing through alpha when it is demoted: its write before reaches beta, then it is cut off.
            final byte[] early = new byte[4096];
            Arrays.fill(early, (byte)0x5e);
            final RawNbdClient writer = RawNbdClient.open(nbd[0], "vm1");
            assertThat(writer.simpleReply(writer.request(0, RawNbdClient.CMD_WRITE, 2 << 20, early.length, early))).isZero();
            assertThat(alpha.runVerb("vm1", "demote", Map.of()).get("message").toString()).contains("read-only")
                .contains("everything written reached beta");
            assertThatThrownBy(() ->
            {
                for (int i = 0; i < 3; i++)
                {
                    writer.simpleReply(writer.request(0, RawNbdClient.CMD_WRITE, 0, 4, new byte[4]));
                }
            }).as("the demoted primary's NBD client is disconnected").isInstanceOf(java.io.IOException.class);
            writer.close();
            assertThat(alpha.standby("vm1")).isNotNull();
            await(() -> !beta.standby("vm1").state().connected(), 30);
            assertThat(beta.runVerb("vm1", "promote", Map.of()).get("message").toString()).contains("read-write");
            final PrimaryVolume promoted = beta.primary("vm1");
            assertThat(promoted).isNotNull();

            final byte[] data = new byte[8192];
            Arrays.fill(data, (byte)0x3c);
            try (RawNbdClient c = RawNbdClient.open(nbd[1], "vm1"))
            {
                assertThat(c.transmissionFlags & RawNbdClient.TFLAG_READ_ONLY).as("promoted export").isZero();
                assertThat(c.simpleReply(c.request(0, RawNbdClient.CMD_WRITE, 1 << 20, data.length, data))).isZero();
            }
            try (RawNbdClient c = RawNbdClient.open(nbd[0], "vm1"))
            {
                assertThat(c.transmissionFlags & RawNbdClient.TFLAG_READ_ONLY).as("demoted export").isNotZero();
                assertThat(c.simpleReply(c.request(0, RawNbdClient.CMD_WRITE, 0, 4, new byte[4])))
                    .isEqualTo(RawNbdClient.EPERM);
            }
            await(promoted::inSync, 60);
            assertThat(promoted.state().syncKind()).as("a clean demote: the new primary resyncs from its dirty map")
                .isEqualTo("dirty-map");
            flushBoth(alpha, beta);
            assertThat(MixedImage.hash(cluster.alphaImage)).isEqualTo(MixedImage.hash(cluster.betaImage));
            try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(cluster.betaImage.toFile(), "r"))
            {
                final byte[] got = new byte[early.length];
                f.seek(2 << 20);
                f.readFully(got);
                assertThat(got).as("the write made just before the demote").isEqualTo(early);
            }

            // and back
            beta.runVerb("vm1", "demote", Map.of());
            await(() -> !alpha.standby("vm1").state().connected(), 30);
            alpha.runVerb("vm1", "promote", Map.of());
            alpha.primary("vm1").write(3 << 20, ByteBuffer.wrap(data));
            await(() -> alpha.primary("vm1").inSync(), 60);
            flushBoth(alpha, beta);
            assertThat(MixedImage.hash(cluster.alphaImage)).isEqualTo(MixedImage.hash(cluster.betaImage));
        }
    }

    private static void flushBoth(final DoppelNode alpha, final DoppelNode beta)
    {
        for (final DoppelNode n : new DoppelNode[] {alpha, beta})
        {
            if (n.primary("vm1") != null)
            {
                n.primary("vm1").flush();
            }
            else
            {
                n.standby("vm1").volume().flush();
            }
        }
    }

    private static void await(final BooleanSupplier condition, final int seconds) throws InterruptedException
    {
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!condition.getAsBoolean())
        {
            assertThat(System.nanoTime()).as("condition within %d s", seconds).isLessThan(deadline);
            Thread.sleep(20);
        }
    }
}
