package io.doppel.replication;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;

import static io.doppel.replication.StreamingReplicationTest.awaitInSync;
import static io.doppel.replication.StreamingReplicationTest.awaitTrue;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Both nodes take writes as primary while apart (the standby was configured primary for a while). When
 * they meet again the generation identifiers show it: the primary refuses to resync, both sides say
 * {@code split-brain}, and nothing on the standby is overwritten.
 */
class SplitBrainTest
{
    private static final long SIZE = 32L << 20;

    @TempDir
    Path dir;

    @Test
    void bothSidesWroteAsPrimaryIsDetectedAndNothingIsOverwritten() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 51);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            awaitInSync(alpha.primary("vm1"), 60);
        }
        final byte[] ours = new byte[8192];
        Arrays.fill(ours, (byte)0xa1);
        try (DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            alpha.primary("vm1").write(0, ByteBuffer.wrap(ours)); // alpha alone
        }
        cluster.betaRole = "primary";
        final byte[] theirs = new byte[8192];
        Arrays.fill(theirs, (byte)0xb2);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig())))
        {
            beta.primary("vm1").write(1 << 20, ByteBuffer.wrap(theirs)); // beta alone, promoted
        }
        final String betaHash = MixedImage.hash(cluster.betaImage);

        cluster.betaRole = "standby";
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            awaitTrue(() -> vm1.state().replication() == VolumeState.Replication.SPLIT_BRAIN
                && vm1.state().lastError().startsWith("split brain"), 30);
            assertThat(vm1.state().lastError()).startsWith("split brain on volume vm1").contains("beta");
            awaitTrue(() -> beta.standby("vm1").state().replication() == VolumeState.Replication.SPLIT_BRAIN, 30);
            Thread.sleep(1500); // it stays that way
            assertThat(vm1.state().replication()).isEqualTo(VolumeState.Replication.SPLIT_BRAIN);
            assertThat(vm1.state().disk()).isNotEqualTo(VolumeState.Disk.UP_TO_DATE);
        }
        assertThat(MixedImage.hash(cluster.betaImage)).as("the standby's copy was not touched").isEqualTo(betaHash);
    }

    @Test
    void discardLeastChangesOverwritesTheStandbyAfterSavingItsBlocks() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        final byte[] theirs = stageSplitBrain(cluster, 8, 2);
        cluster.afterSplitBrain = "discard-least-changes";
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            awaitInSync(vm1, 60);
            assertThat(vm1.state().syncKind()).isEqualTo("full-compare");
            vm1.flush();
            beta.standby("vm1").volume().flush();
            assertThat(MixedImage.hash(cluster.betaImage)).isEqualTo(MixedImage.hash(cluster.alphaImage));
        }
        // beta's own two blocks are in the saved file, at their offsets
        final Path saved;
        try (var files = java.nio.file.Files.list(dir.resolve("beta")))
        {
            saved = files.filter(f -> f.getFileName().toString().startsWith("vm1.split-brain-")).findFirst().orElseThrow();
        }
        assertThat(java.nio.file.Files.size(saved)).isEqualTo(SIZE);
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(saved.toFile(), "r"))
        {
            final byte[] got = new byte[theirs.length];
            f.seek(1 << 20);
            f.readFully(got);
            assertThat(got).isEqualTo(theirs);
        }
    }

    @Test
    void aPolicyThatPicksThePrimaryRefusesAndSaysWhatToDo() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        final String betaHash;
        stageSplitBrain(cluster, 2, 8);
        betaHash = MixedImage.hash(cluster.betaImage);
        cluster.afterSplitBrain = "discard-least-changes";
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            awaitTrue(() -> vm1.state().replication() == VolumeState.Replication.SPLIT_BRAIN
                && vm1.state().lastError().startsWith("split brain"), 30);
            assertThat(vm1.state().lastError()).contains("discard-least-changes").contains("picks this primary")
                .contains("promote beta");
        }
        assertThat(MixedImage.hash(cluster.betaImage)).isEqualTo(betaHash);
    }

    /**
     * alpha and beta in sync, then alpha writes {@code alphaBlocks} 4 KiB blocks alone and beta, made
     * primary for a while, {@code betaBlocks} (at 1 MiB); beta is standby again afterwards. Returns beta's bytes.
     */
    private static byte[] stageSplitBrain(final TestCluster cluster, final int alphaBlocks, final int betaBlocks)
        throws Exception
    {
        MixedImage.create(cluster.alphaImage, SIZE, 53);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            awaitInSync(alpha.primary("vm1"), 60);
        }
        final byte[] ours = new byte[alphaBlocks * 4096];
        Arrays.fill(ours, (byte)0xa1);
        try (DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            alpha.primary("vm1").write(0, ByteBuffer.wrap(ours));
        }
        cluster.betaRole = "primary";
        final byte[] theirs = new byte[betaBlocks * 4096];
        Arrays.fill(theirs, (byte)0xb2);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig())))
        {
            beta.primary("vm1").write(1 << 20, ByteBuffer.wrap(theirs));
        }
        cluster.betaRole = "standby";
        return theirs;
    }

    @Test
    void aStandbyPromotedWithoutWritingRejoinsWithoutAFullCompare() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 52);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            awaitInSync(alpha.primary("vm1"), 60);
        }
        cluster.betaRole = "primary";
        DoppelNode.start(ConfigLoader.load(cluster.betaConfig())).close();
        cluster.betaRole = "standby";
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            vm1.write(4096, ByteBuffer.wrap(new byte[] {1, 2, 3}));
            awaitInSync(vm1, 60);
            assertThat(vm1.state().syncKind()).isEqualTo("dirty-map");
            vm1.flush();
            beta.standby("vm1").volume().flush();
            assertThat(MixedImage.hash(cluster.betaImage)).isEqualTo(MixedImage.hash(cluster.alphaImage));
        }
    }
}
