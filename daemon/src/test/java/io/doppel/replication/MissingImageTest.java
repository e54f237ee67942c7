package io.doppel.replication;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static io.doppel.replication.StreamingReplicationTest.awaitInSync;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * An image that vanished under its metadata: a primary refuses to start (serving zeros would overwrite
 * the standby), and a standby whose image is recreated gets a whole-volume compare instead of trusting
 * its metadata.
 */
class MissingImageTest
{
    private static final long SIZE = 16L << 20;

    @TempDir
    Path dir;

    @Test
    void aPrimaryRefusesAMissingImageAndAStandbyIsRebuilt() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 91);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            awaitInSync(alpha.primary("vm1"), 60);
        }
        final Path moved = dir.resolve("alpha-vm1.img.bak");
        Files.move(cluster.alphaImage, moved);
        assertThatThrownBy(() -> DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
            .isInstanceOf(IOException.class).hasMessageContaining("is missing")
            .hasMessageContaining("refusing to serve it as primary");
        assertThat(cluster.alphaImage).as("no empty image left behind").doesNotExist();
        Files.move(moved, cluster.alphaImage);

        Files.delete(cluster.betaImage);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(cluster.alphaConfig())))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            awaitInSync(vm1, 60);
            assertThat(vm1.state().syncKind()).as("a recreated standby image is blank: its non-zero blocks are copied, not compared")
                .isEqualTo("full-copy");
            vm1.flush();
            beta.standby("vm1").volume().flush();
            assertThat(MixedImage.hash(cluster.betaImage)).isEqualTo(MixedImage.hash(cluster.alphaImage));
        }
    }
}
