package io.doppel.cli;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.replication.PrimaryVolume;
import io.doppel.replication.VolumeState;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;

import static io.doppel.cli.CliRun.freePort;
import static io.doppel.cli.CliRun.run;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * The operator's verbs against two running nodes: verify finds blocks corrupted behind the daemon's back
 * in the standby's image and --repair fixes them; verify under concurrent writes reports no false
 * difference; pause and resume; resync; refusals name the volume and what to do.
 */
class OperatorVerbsTest
{
    private static final long SIZE = 64L << 20;

    @TempDir
    Path dir;

    @Test
    void verifyFindsCorruptedStandbyBlocksAndRepairFixesThem() throws Exception
    {
        final Pair pair = new Pair(dir);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(pair.beta));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(pair.alpha)))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            await(vm1::inSync, 60);
            final String admin = "127.0.0.1:" + pair.alphaAdmin;

            final CliRun.Result clean = run("verify", "vm1", "--timeout", "120", "--admin", admin);
            assertThat(clean.code()).as(clean.out() + clean.err()).isZero();
            assertThat(clean.out()).contains("verify done: 0 block(s) differ");

            // Behind the daemon's back: two blocks of the standby's image change.
            try (RandomAccessFile f = new RandomAccessFile(pair.betaImage.toFile(), "rw"))
            {
                f.seek(5L * 4096 + 100);
                f.write(new byte[] {1, 2, 3, 4});
                f.seek(SIZE - 4096);
                f.write(0x5a);
            }
            assertThat(MixedImage.hash(pair.betaImage)).isNotEqualTo(MixedImage.hash(pair.alphaImage));

            final CliRun.Result found = run("verify", "vm1", "--timeout", "120", "--admin", admin);
            assertThat(found.code()).as(found.out() + found.err()).isEqualTo(1);
            assertThat(found.out()).contains("2 block(s) differ").contains("differs at offset " + 5L * 4096)
                .contains("differs at offset " + (SIZE - 4096));
            assertThat(MixedImage.hash(pair.betaImage)).as("verify without --repair changes nothing")
                .isNotEqualTo(MixedImage.hash(pair.alphaImage));

            final CliRun.Result repaired = run("verify", "vm1", "--repair", "--timeout", "120", "--admin", admin);
            assertThat(repaired.code()).as(repaired.out() + repaired.err()).isZero();
            assertThat(repaired.out()).contains("2 block(s) differ, 2 sent again");
            await(vm1::inSync, 30);
            beta.standby("vm1").volume().flush();
            assertThat(MixedImage.hash(pair.betaImage)).isEqualTo(MixedImage.hash(pair.alphaImage));
        }
    }

    @Test
    void verifyWhileWritersRunReportsNoFalseDifference() throws Exception
    {
        final Pair pair = new Pair(dir);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(pair.beta));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(pair.alpha)))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            await(vm1::inSync, 60);
            final AtomicBoolean stop = new AtomicBoolean();
            final Thread writer = new Thread(() ->
            {
                final SplittableRandom random = new SplittableRandom(3);
                final byte[] block = new byte[4096];
                while (!stop.get())
                {
                    random.nextBytes(block);
                    vm1.write(random.nextLong(SIZE / 4096) * 4096 + random.nextInt(100), ByteBuffer.wrap(block, 0, 3000));
                }
            });
            writer.start();
            try
            {
                final CliRun.Result r = run("verify", "vm1", "--timeout", "120", "--admin", "127.0.0.1:" + pair.alphaAdmin);
                assertThat(r.code()).as(r.out() + r.err()).isZero();
                assertThat(r.out()).contains("verify done: 0 block(s) differ");
            }
            finally
            {
                stop.set(true);
                writer.join();
            }
            await(vm1::inSync, 60);
            alpha.primary("vm1").flush();
            beta.standby("vm1").volume().flush();
            assertThat(MixedImage.hash(pair.betaImage)).isEqualTo(MixedImage.hash(pair.alphaImage));
        }
    }

    @Test
    void pauseResumeResyncAndRefusals() throws Exception
    {
        final Pair pair = new Pair(dir);
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(pair.beta));
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(pair.alpha)))
        {
            final PrimaryVolume vm1 = alpha.primary("vm1");
            await(vm1::inSync, 60);
            final String admin = "127.0.0.1:" + pair.alphaAdmin;

            assertThat(run("pause", "vm1", "--admin", admin).code()).isZero();
            await(() -> vm1.state().replication() == VolumeState.Replication.PAUSED && !vm1.state().connected(), 30);
            vm1.write(8192, ByteBuffer.wrap(new byte[] {9, 9, 9}));
            assertThat(vm1.dirtyBytes()).isEqualTo(4096);
            assertThat(run("resume", "vm1", "--admin", admin).code()).isZero();
            await(vm1::inSync, 60);
            assertThat(vm1.state().syncKind()).isEqualTo("dirty-map");

            final CliRun.Result resync = run("resync", "vm1", "--timeout", "120", "--admin", admin);
            assertThat(resync.code()).as(resync.out() + resync.err()).isZero();
            assertThat(resync.out()).contains("resync done");
            await(() -> "full-compare".equals(vm1.state().syncKind()) && vm1.inSync(), 60);
            alpha.primary("vm1").flush();
            beta.standby("vm1").volume().flush();
            assertThat(MixedImage.hash(pair.betaImage)).isEqualTo(MixedImage.hash(pair.alphaImage));

            final CliRun.Result onStandby = run("pause", "vm1", "--admin", "127.0.0.1:" + pair.betaAdmin);
            assertThat(onStandby.code()).isEqualTo(1);
            assertThat(onStandby.err()).contains("volume vm1 is standby on node beta").contains("run pause on its primary");
            final CliRun.Result unknown = run("pause", "vm9", "--admin", admin);
            assertThat(unknown.code()).isEqualTo(1);
            assertThat(unknown.err()).contains("no volume named \"vm9\" on node alpha").contains("vm1");
            final java.net.http.HttpResponse<String> forged = java.net.http.HttpClient.newHttpClient().send(
                java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://" + admin + "/volumes/vm1/pause"))
                    .POST(java.net.http.HttpRequest.BodyPublishers.noBody()).build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
            assertThat(forged.statusCode()).as("a verb without the X-Doppel-Verb header").isEqualTo(403);
            assertThat(vm1.state().replication()).isNotEqualTo(VolumeState.Replication.PAUSED);
            final CliRun.Result promoteConnected = run("promote", "vm1", "--admin", "127.0.0.1:" + pair.betaAdmin);
            assertThat(promoteConnected.code()).isEqualTo(1);
            assertThat(promoteConnected.err()).contains("primary alpha is connected").contains("demote it");
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

    /** Configs of alpha (primary) and beta (standby) for vm1 on loopback, beta starting from a copy. */
    private static final class Pair
    {
        final Path alpha;
        final Path beta;
        final Path alphaImage;
        final Path betaImage;
        final int alphaAdmin;
        final int betaAdmin;

        Pair(final Path dir) throws Exception
        {
            final int alphaListen = freePort();
            final int betaListen = freePort();
            alphaAdmin = freePort();
            betaAdmin = freePort();
            Files.createDirectories(dir.resolve("a"));
            Files.createDirectories(dir.resolve("b"));
            alphaImage = dir.resolve("a/vm1.img");
            betaImage = dir.resolve("b/vm1.img");
            MixedImage.create(alphaImage, SIZE, 71);
            Files.copy(alphaImage, betaImage);
            alpha = write(dir, "alpha", alphaListen, alphaAdmin, "beta", betaListen, alphaImage, "primary");
            beta = write(dir, "beta", betaListen, betaAdmin, "alpha", alphaListen, betaImage, "standby");
        }

        private static Path write(final Path dir, final String node, final int listen, final int admin,
            final String peer, final int peerPort, final Path image, final String role) throws Exception
        {
            final Path file = dir.resolve(node + ".toml");
            Files.writeString(file, String.join("\n",
                "[node]", "name = \"" + node + "\"", "listen = \"127.0.0.1:" + listen + "\"",
                "admin = \"127.0.0.1:" + admin + "\"", "data-dir = \"" + image.getParent() + "\"",
                "[[peer]]", "name = \"" + peer + "\"", "address = \"127.0.0.1:" + peerPort + "\"",
                "[[volume]]", "name = \"vm1\"", "path = \"" + image + "\"", "size = " + SIZE,
                "role = \"" + role + "\"", ""));
            return file;
        }
    }
}
