package io.doppel.daemon;

import io.doppel.config.ConfigLoader;
import io.doppel.replication.DaemonProcesses;
import io.doppel.replication.PrimaryVolume;
import io.doppel.replication.TestCluster;
import io.doppel.replication.VolumeState;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Live reload: compression changes while the volume streams (and the blocks sent afterwards use the new
 * codec), a change that cannot apply live refuses the whole reload while replication goes on, a broken
 * file is refused, a new volume is opened and replicated, and SIGHUP to a daemon process reloads it
 * without stopping it.
 */
class ReloadTest
{
    private static final long SIZE = 16L << 20;

    @TempDir
    Path dir;

    @Test
    void compressionChangesLiveAndAForbiddenChangeRefusesTheWholeReload() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 201);
        final Path betaFile = cluster.betaConfig();
        final Path alphaFile = cluster.alphaConfig();
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(betaFile), betaFile);
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(alphaFile), alphaFile))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            final VolumeState state = vm1.state();
            await(vm1::inSync, 60);

            writeText(vm1, 0, 32);
            await(vm1::inSync, 30);
            final long savedWithLz4 = state.compressionSavedBytes();
            assertThat(savedWithLz4).as("lz4 saved bytes on text").isPositive();

            // lz4 -> none: the blocks written afterwards are sent raw, so nothing more is saved.
            edit(alphaFile, "compression = \"lz4\"", "compression = \"none\"");
            ReloadResult r = alpha.reloadFromFile();
            assertThat(r.accepted()).as(r.toString()).isTrue();
            assertThat(r.changes()).containsExactly("vm1: compression lz4 -> none");
            assertThat(alpha.status().toString()).contains("compression=none");
            final long sentBefore = state.bytesSent();
            writeText(vm1, 64, 32);
            await(vm1::inSync, 30);
            assertThat(state.compressionSavedBytes()).as("saved bytes after switching to none").isEqualTo(savedWithLz4);
            assertThat(state.bytesSent() - sentBefore).as("raw blocks cross the wire").isGreaterThan(32 * 4096);

            // none -> zstd, and the log level with it: saving again.
            edit(alphaFile, "compression = \"none\"", "compression = \"zstd\"");
            edit(alphaFile, "[node]", "[node]\nlog-level = \"debug\"");
            r = alpha.reloadFromFile();
            assertThat(r.changes()).containsExactlyInAnyOrder("vm1: compression none -> zstd",
                "[node].log-level info -> debug");
            writeText(vm1, 128, 32);
            await(vm1::inSync, 30);
            assertThat(state.compressionSavedBytes()).as("zstd saved bytes").isGreaterThan(savedWithLz4);

            // A forbidden change next to an allowed one: nothing is applied, replication goes on.
            edit(alphaFile, "compression = \"zstd\"", "compression = \"lz4\"");
            edit(alphaFile, "block-size = \"4KiB\"", "block-size = \"8KiB\"");
            r = alpha.reloadFromFile();
            assertThat(r.accepted()).isFalse();
            assertThat(r.refused()).singleElement().asString()
                .contains("vm1: block-size 4KiB -> 8KiB cannot change live");
            assertThat(vm1.config().compression().configName()).as("all or nothing").isEqualTo("zstd");
            assertThat(vm1.config().blockSize()).isEqualTo(4096);

            // A file that does not load is refused with the loader's message.
            final String good = Files.readString(alphaFile);
            Files.writeString(alphaFile, good.replace("block-size = \"8KiB\"", "block-size = \"3000\""));
            r = alpha.reloadFromFile();
            assertThat(r.accepted()).isFalse();
            assertThat(r.refused().get(0)).contains("block-size=").contains("3000");

            writeText(vm1, 256, 64);
            await(vm1::inSync, 30);
            alpha.primary("vm1").flush();
            beta.standby("vm1").volume().flush();
            assertThat(MixedImage.hash(cluster.betaImage)).isEqualTo(MixedImage.hash(cluster.alphaImage));
        }
    }

    @Test
    void aVolumeAddedToBothFilesIsOpenedAndReplicated() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 202);
        final Path alphaVm2 = dir.resolve("alpha/vm2.img");
        final Path betaVm2 = dir.resolve("beta/vm2.img");
        MixedImage.create(alphaVm2, 8L << 20, 203);
        final Path betaFile = cluster.betaConfig();
        final Path alphaFile = cluster.alphaConfig();
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(betaFile), betaFile);
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(alphaFile), alphaFile))
        {
            await(alpha.primary("vm1")::inSync, 60);
            Files.writeString(betaFile, volume("vm2", betaVm2, "standby", "alpha"), java.nio.file.StandardOpenOption.APPEND);
            Files.writeString(alphaFile, volume("vm2", alphaVm2, "primary", "beta"), java.nio.file.StandardOpenOption.APPEND);
            assertThat(beta.reloadFromFile().changes()).singleElement().asString().startsWith("vm2: added as standby");
            final ReloadResult r = alpha.reloadFromFile();
            assertThat(r.accepted()).as(r.toString()).isTrue();
            final PrimaryVolume vm2 = alpha.primary("vm2");
            assertThat(vm2).isNotNull();
            await(vm2::inSync, 60);
            vm2.flush();
            beta.standby("vm2").volume().flush();
            assertThat(MixedImage.hash(betaVm2)).isEqualTo(MixedImage.hash(alphaVm2));
            assertThat(alpha.status().toString()).contains("name=vm2");

            // Removing it again is refused: the volume keeps replicating until a restart.
            Files.writeString(alphaFile, Files.readString(alphaFile).substring(0,
                Files.readString(alphaFile).indexOf("\n[[volume]]\nname = \"vm2\"")));
            final ReloadResult removed = alpha.reloadFromFile();
            assertThat(removed.accepted()).isFalse();
            assertThat(removed.refused()).singleElement().asString().startsWith("vm2: not in the file any more");
            assertThat(alpha.primary("vm2")).isNotNull();
        }
    }

    @Test
    void sighupReloadsADaemonProcessWithoutStoppingIt() throws Exception
    {
        final TestCluster cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.alphaImage, SIZE, 204);
        try (DaemonProcesses daemons = new DaemonProcesses(dir))
        {
            daemons.start(cluster.betaConfig(), "beta");
            final Path alphaFile = cluster.alphaConfig();
            final Process alpha = daemons.start(alphaFile, "alpha");
            daemons.awaitStatus(cluster.alphaAdmin, DaemonProcesses::inSync, 60);

            edit(alphaFile, "compression = \"lz4\"", "compression = \"zstd\"");
            hangup(alpha);
            daemons.awaitStatus(cluster.alphaAdmin, v -> "zstd".equals(v.path("compression").asText()), 20);

            edit(alphaFile, "listen = \"127.0.0.1:" + cluster.alphaListen + "\"", "listen = \"127.0.0.1:1\"");
            hangup(alpha);
            final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (!daemons.log("alpha").contains("refused, still running on the old config")
                && System.nanoTime() < deadline)
            {
                Thread.sleep(100);
            }
            assertThat(daemons.log("alpha")).contains("reload of " + alphaFile + " refused, still running on the old"
                + " config: [node].listen: 127.0.0.1:" + cluster.alphaListen + " -> 127.0.0.1:1 cannot change live");
            assertThat(alpha.isAlive()).as("a SIGHUP does not stop the daemon").isTrue();
            assertThat(daemons.awaitStatus(cluster.alphaAdmin, DaemonProcesses::inSync, 30).path("compression")
                .asText()).isEqualTo("zstd");
        }
    }

    private static void hangup(final Process p) throws Exception
    {
        assertThat(new ProcessBuilder("kill", "-HUP", Long.toString(p.pid())).start().waitFor()).isZero();
    }

    private static String volume(final String name, final Path path, final String role, final String peer)
    {
        return String.join("\n", "", "[[volume]]", "name = \"" + name + "\"", "path = \"" + path + "\"",
            "size = " + (8L << 20), "role = \"" + role + "\"", "peer = \"" + peer + "\"", "");
    }

    /** Writes {@code blocks} blocks of text (compressible) at block {@code first}. */
    private static void writeText(final PrimaryVolume vm, final long first, final int blocks)
    {
        final StringBuilder sb = new StringBuilder();
        for (int i = 0; sb.length() < blocks * 4096; i++)
        {
            sb.append("line ").append(first + i).append(": the quick brown fox jumps over the lazy dog\n");
        }
        final byte[] bytes = sb.substring(0, blocks * 4096).getBytes(StandardCharsets.US_ASCII);
        vm.write(first * 4096, ByteBuffer.wrap(bytes));
    }

    private static void edit(final Path file, final String from, final String to) throws Exception
    {
        final String text = Files.readString(file);
        assertThat(text).contains(from);
        Files.writeString(file, text.replace(from, to));
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
