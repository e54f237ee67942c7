package io.doppel.replication;

import com.fasterxml.jackson.databind.JsonNode;
import io.doppel.daemon.DaemonMain;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Two daemons as separate processes on loopback, configured from TOML files. The standby already holds
 * a partly-equal copy: after the sync the images are byte-identical and only a fraction of the image
 * crossed the wire. A standby killed with SIGKILL in the middle of a sync resumes and converges.
 */
class TwoDaemonProcessesTest
{
    private static final long SIZE = 256L << 20;
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

    @Test
    void syncsPartlyEqualStandbyAndSendsOnlyTheDifferences() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 11);
        Files.copy(cluster.alphaImage, cluster.betaImage, StandardCopyOption.REPLACE_EXISTING);
        final long changed = MixedImage.mutate(cluster.betaImage, 0.25, 64 << 10, 12);
        assertThat(MixedImage.hash(cluster.betaImage)).isNotEqualTo(MixedImage.hash(cluster.alphaImage));

        final Process beta = start(cluster.betaConfig(), "beta");
        final Process alpha = start(cluster.alphaConfig(), "alpha");

        final JsonNode synced = awaitStatus(cluster.alphaAdmin, v -> "streaming".equals(v.path("replication").asText())
            && "up-to-date".equals(v.path("disk").asText()) && v.path("dirtyBytes").asLong() == 0, 120);
        final JsonNode standby = awaitStatus(cluster.betaAdmin, v -> "up-to-date".equals(v.path("disk").asText()), 30);
        assertThat(standby.path("role").asText()).isEqualTo("standby");
        assertThat(standby.path("peer").path("connected").asBoolean()).isTrue();

        // Stop both the hard way: the standby's copy must already be complete on disk.
        alpha.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        beta.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        assertThat(MixedImage.hash(cluster.betaImage)).isEqualTo(MixedImage.hash(cluster.alphaImage));

        final long sent = synced.path("bytesSent").asLong();
        assertThat(synced.path("role").asText()).isEqualTo("primary");
        assertThat(synced.path("size").asLong()).isEqualTo(SIZE);
        // A quarter of the 64 KiB units differ; the hash lists are 16 bytes per 4 KiB block.
        assertThat(sent).as("bytes sent for %d changed bytes", changed).isLessThan(SIZE / 3);
        assertThat(sent).as("something had to be sent").isGreaterThan(changed / 4);
    }

    @Test
    void standbyKilledDuringSyncConvergesAfterRestart() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 21);
        final Process beta = start(cluster.betaConfig(), "beta");
        start(cluster.alphaConfig(), "alpha");
        awaitStatus(cluster.alphaAdmin, v -> v.path("syncedBytes").asLong() > 0
            && v.path("syncedBytes").asLong() < SIZE / 2, 60);
        beta.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        final JsonNode down = awaitStatus(cluster.alphaAdmin, v -> !v.path("peer").path("connected").asBoolean(), 30);
        assertThat(down.path("disk").asText()).isIn("inconsistent", "outdated");

        start(cluster.betaConfig(), "beta2");
        final JsonNode synced = awaitStatus(cluster.alphaAdmin, v -> "up-to-date".equals(v.path("disk").asText())
            && v.path("dirtyBytes").asLong() == 0, 120);
        assertThat(synced.path("connects").asLong()).isGreaterThanOrEqualTo(2);
        awaitStatus(cluster.betaAdmin, v -> "up-to-date".equals(v.path("disk").asText()), 30);
        assertThat(MixedImage.hash(cluster.betaImage)).isEqualTo(MixedImage.hash(cluster.alphaImage));
    }

    @Test
    void refusesAStandbyOfAnotherSizeOnBothSides() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, 64L << 20);
        cluster.betaSize = 32L << 20;
        MixedImage.create(cluster.alphaImage, 64L << 20, 3);
        start(cluster.betaConfig(), "beta");
        start(cluster.alphaConfig(), "alpha");
        final JsonNode v = awaitStatus(cluster.alphaAdmin, s -> s.path("lastError").asText().contains("size mismatch"),
            30);
        assertThat(v.path("lastError").asText()).contains(String.valueOf(32L << 20)).contains(String.valueOf(64L << 20));
        assertThat(v.path("disk").asText()).isNotEqualTo("up-to-date");
        assertThat(Files.size(cluster.betaImage)).isEqualTo(32L << 20);
        assertThat(new File(cluster.betaImage.toString()).length()).isEqualTo(32L << 20);
    }

    @Test
    void badConfigExitsWithCodeTwoAndNamesTheKey() throws Exception
    {
        final Path config = dir.resolve("bad.toml");
        Files.writeString(config, "[node]\nname = \"alpha\"\n[[peer]]\nname = \"beta\"\naddress = \"127.0.0.1:1\"\n"
            + "[[volume]]\nname = \"vm1\"\npath = \"/tmp/x.img\"\nrole = \"primary\"\nblock-size = 3000\n");
        final Process p = start(config, "bad");
        assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(p.exitValue()).isEqualTo(DaemonMain.EXIT_CONFIG);
        assertThat(Files.readString(dir.resolve("bad.log")))
            .contains("block-size=3000").contains("power of two between 4KiB and 1MiB");
    }

    private Process start(final Path config, final String name) throws IOException
    {
        return daemons.start(config, name);
    }

    private JsonNode awaitStatus(final int adminPort, final Predicate<JsonNode> done, final int seconds)
        throws Exception
    {
        return daemons.awaitStatus(adminPort, done, seconds);
    }
}
