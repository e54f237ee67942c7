package io.doppel.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.replication.PrimaryVolume;
import io.doppel.replication.VolumeState;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;

import static io.doppel.cli.CliRun.freePort;
import static io.doppel.cli.CliRun.run;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * The operator's verbs against two running nodes: verify finds blocks corrupted behind the daemon's back
 * in the standby's image and --repair fixes them; verify under concurrent writes reports no false
 * difference; pause and resume; resync; refusals name the volume and what to do. Progress of verify
 * and resync without a terminal (plain lines at an interval, with rate and ETA) and on one (a bar
 * redrawn in place), against status documents made up here with a clock that moves 1 s per poll.
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

            final CliRun.Result clean = run("verify", "vm1", "--timeout", "120", "--config", pair.alpha.toString());
            assertThat(clean.code()).as(clean.out() + clean.err()).isZero();
            assertThat(clean.out()).contains("verify done: 0 block(s) differ");
            assertThat(clean.err()).as("not a terminal: plain lines, no bar").doesNotContain("\r").doesNotContain("\033[");

            // Behind the daemon's back: two blocks of the standby's image change.
            try (RandomAccessFile f = new RandomAccessFile(pair.betaImage.toFile(), "rw"))
            {
                f.seek(5L * 4096 + 100);
                f.write(new byte[] {1, 2, 3, 4});
                f.seek(SIZE - 4096);
                f.write(0x5a);
            }
            assertThat(MixedImage.hash(pair.betaImage)).isNotEqualTo(MixedImage.hash(pair.alphaImage));

            final CliRun.Result found = run("verify", "vm1", "--timeout", "120", "--config", pair.alpha.toString());
            assertThat(found.code()).as(found.out() + found.err()).isEqualTo(1);
            assertThat(found.out()).contains("2 block(s) differ").contains("differs at offset " + 5L * 4096)
                .contains("differs at offset " + (SIZE - 4096));
            assertThat(MixedImage.hash(pair.betaImage)).as("verify without --repair changes nothing")
                .isNotEqualTo(MixedImage.hash(pair.alphaImage));

            final CliRun.Result repaired = run("verify", "vm1", "--repair", "--timeout", "120", "--config", pair.alpha.toString());
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
                final CliRun.Result r = run("verify", "vm1", "--timeout", "120", "--config", pair.alpha.toString());
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

            assertThat(run("pause", "vm1", "--config", pair.alpha.toString()).code()).isZero();
            await(() -> vm1.state().replication() == VolumeState.Replication.PAUSED && !vm1.state().connected(), 30);
            vm1.write(8192, ByteBuffer.wrap(new byte[] {9, 9, 9}));
            assertThat(vm1.dirtyBytes()).isEqualTo(4096);
            assertThat(run("resume", "vm1", "--config", pair.alpha.toString()).code()).isZero();
            await(vm1::inSync, 60);
            assertThat(vm1.state().syncKind()).isEqualTo("dirty-map");

            final CliRun.Result resync = run("resync", "vm1", "--timeout", "120", "--config", pair.alpha.toString());
            assertThat(resync.code()).as(resync.out() + resync.err()).isZero();
            assertThat(resync.out()).contains("resync done");
            assertThat(resync.err()).doesNotContain("\r");
            await(() -> "full-compare".equals(vm1.state().syncKind()) && vm1.inSync(), 60);
            alpha.primary("vm1").flush();
            beta.standby("vm1").volume().flush();
            assertThat(MixedImage.hash(pair.betaImage)).isEqualTo(MixedImage.hash(pair.alphaImage));

            final CliRun.Result onStandby = run("pause", "vm1", "--config", pair.beta.toString());
            assertThat(onStandby.code()).isEqualTo(1);
            assertThat(onStandby.err()).contains("volume vm1 is standby on node beta").contains("run pause on its primary");
            final CliRun.Result unknown = run("pause", "vm9", "--config", pair.alpha.toString());
            assertThat(unknown.code()).isEqualTo(1);
            assertThat(unknown.err()).contains("no volume named \"vm9\" on node alpha").contains("vm1");
            final java.net.http.HttpResponse<String> forged = java.net.http.HttpClient.newHttpClient().send(
                java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://" + admin + "/volumes/vm1/pause"))
                    .POST(java.net.http.HttpRequest.BodyPublishers.noBody()).build(),
                java.net.http.HttpResponse.BodyHandlers.ofString());
            assertThat(forged.statusCode()).as("a verb without the X-Doppel-Verb header").isEqualTo(403);
            final Path otherToken = dir.resolve("other.token");
            Files.writeString(otherToken, "0123456789abcdef0123456789abcdef\n");
            final CliRun.Result wrongToken = run("pause", "vm1", "--admin", admin, "--token-file", otherToken.toString());
            assertThat(wrongToken.code()).as("exit code: not allowed").isEqualTo(DoppelCli.EXIT_NOT_ALLOWED);
            assertThat(wrongToken.err()).contains("pause vm1 not allowed by the daemon at " + admin)
                .contains("does not match the one in " + dir.resolve("a/admin.token"));
            assertThat(vm1.state().replication()).isNotEqualTo(VolumeState.Replication.PAUSED);
            final CliRun.Result promoteConnected = run("promote", "vm1", "--config", pair.beta.toString());
            assertThat(promoteConnected.code()).isEqualTo(1);
            assertThat(promoteConnected.err()).contains("primary alpha is connected").contains("demote it");
        }
    }

    @Test
    void verifyProgressWithoutATerminalIsAPlainLineEveryInterval() throws Exception
    {
        final VerbCommands.Verify verify = new VerbCommands.Verify();
        verify.volume = "vm1";
        verify.timeoutSeconds = 60;
        verify.counterBefore = 0; // verify.runs before the request
        final AtomicLong clock = new AtomicLong();
        final List<JsonNode> statuses = new ArrayList<>();
        statuses.add(volume("streaming", verifyStatus(0, "none", 0, 0))); // the daemon has not started it yet
        for (int second = 0; second <= 16; second++) // 4 MiB/s over 64 MiB
        {
            statuses.add(volume("streaming", verifyStatus(1, "running", 4L * second << 20, 64L << 20)));
        }
        statuses.add(volume("streaming", verifyStatus(1, "done", 64L << 20, 64L << 20)));
        final Captured run = follow(verify, statuses, clock, false, 5);

        assertThat(run.code).isZero();
        assertThat(run.out).contains("vm1: verify done: 0 block(s) differ");
        assertThat(run.err).doesNotContain("\r").doesNotContain("\033[");
        assertThat(run.err.lines()).containsExactly(
            "waiting for vm1 to stream (replication streaming)",
            "verifying vm1: 0% of 64.0 MiB (0 B), 0 differing so far",
            "verifying vm1: 31% of 64.0 MiB (20.0 MiB), 0 differing so far, 4.0 MiB/s, ETA 11s",
            "verifying vm1: 63% of 64.0 MiB (40.0 MiB), 0 differing so far, 4.0 MiB/s, ETA 6s",
            "verifying vm1: 94% of 64.0 MiB (60.0 MiB), 0 differing so far, 4.0 MiB/s, ETA 1s");
    }

    @Test
    void resyncProgressStartsOverAfterAReconnectAndTimesOutWithAMessage() throws Exception
    {
        final VerbCommands.Resync resync = new VerbCommands.Resync();
        resync.volume = "vm1";
        resync.timeoutSeconds = 60;
        resync.counterBefore = 3; // links made before the request
        final AtomicLong clock = new AtomicLong();
        final List<JsonNode> statuses = new ArrayList<>();
        statuses.add(resyncStatus(3, "connecting", 0, 0));
        statuses.add(resyncStatus(4, "syncing", 0, 100L << 20));
        statuses.add(resyncStatus(4, "syncing", 10L << 20, 100L << 20));
        statuses.add(resyncStatus(5, "syncing", 0, 100L << 20)); // link cut: the compare starts over
        statuses.add(resyncStatus(5, "syncing", 20L << 20, 100L << 20));
        statuses.add(resyncStatus(5, "syncing", 40L << 20, 100L << 20));
        final ObjectMapper json = new ObjectMapper();
        final JsonNode done = json.createObjectNode().put("name", "vm1").put("connects", 5).put("replication", "streaming")
            .put("disk", "up-to-date").put("dirtyBytes", 0).put("syncBytesSent", 3L << 20);
        statuses.add(done);
        final Captured run = follow(resync, statuses, clock, false, 1);

        assertThat(run.code).isZero();
        assertThat(run.out).contains("vm1: resync done: 3.0 MiB sent; the standby is up to date");
        assertThat(run.err.lines()).containsExactly(
            "waiting for vm1 to reconnect (replication connecting)",
            "resync vm1: syncing, 0% of 100.0 MiB compared (0 B)",
            "resync vm1: syncing, 10% of 100.0 MiB compared (10.0 MiB), 10.0 MiB/s, ETA 9s",
            "resync vm1: syncing, 0% of 100.0 MiB compared (0 B)",
            "resync vm1: syncing, 20% of 100.0 MiB compared (20.0 MiB), 20.0 MiB/s, ETA 4s",
            "resync vm1: syncing, 40% of 100.0 MiB compared (40.0 MiB), 20.0 MiB/s, ETA 3s");

        resync.timeoutSeconds = 0;
        final Captured late = follow(resync, List.of(resyncStatus(5, "syncing", 0, 1)), clock, false, 1);
        assertThat(late.code).isEqualTo(1);
        assertThat(late.err).contains("doppel: resync of vm1 did not finish within 0 s; it goes on in the daemon");
    }

    @Test
    void onATerminalTheBarIsRedrawnInPlaceAndClearedBeforeTheResult() throws Exception
    {
        final VerbCommands.Verify verify = new VerbCommands.Verify();
        verify.volume = "vm1";
        verify.timeoutSeconds = 60;
        final List<JsonNode> statuses = List.of(
            volume("syncing", verifyStatus(0, "none", 0, 0)),
            volume("streaming", verifyStatus(1, "running", 0, 64L << 20)),
            volume("streaming", verifyStatus(1, "running", 32L << 20, 64L << 20)),
            volume("streaming", verifyStatus(1, "done", 64L << 20, 64L << 20)));
        final Captured run = follow(verify, statuses, new AtomicLong(), true, 5);

        assertThat(run.code).isZero();
        assertThat(run.out).contains("verify done");
        assertThat(run.err).doesNotContain("\n").startsWith("\rwaiting for vm1 to stream (replication syncing)\033[K")
            .contains("\rverify vm1 [                    ]   0% 0 B/64.0 MiB --/s ETA --\033[K")
            .contains("\rverify vm1 [##########          ]  50% 32.0 MiB/64.0 MiB 32.0 MiB/s ETA 1s\033[K")
            .endsWith("\r\033[K");

        final ByteArrayOutputStream narrow = new ByteArrayOutputStream();
        final Progress p = new Progress(new PrintStream(narrow, true, StandardCharsets.UTF_8), true, 5, () -> 0, 40);
        p.update("", "resync a-volume-with-a-long-name", "syncing", 1, 2);
        assertThat(narrow.toString(StandardCharsets.UTF_8)).as("cut to the terminal's width")
            .isEqualTo("\rresync a-volume-with-a-long-name [#####\033[K");
    }

    private record Captured(int code, String out, String err)
    {
    }

    /** Runs the verb's wait loop over {@code statuses}, one per poll, the clock 1 s further at each. */
    private static Captured follow(final VerbCommands.WaitingVerb verb, final List<JsonNode> statuses, final AtomicLong clock,
        final boolean terminal, final double interval) throws InterruptedException
    {
        final ByteArrayOutputStream err = new ByteArrayOutputStream();
        final ByteArrayOutputStream out = new ByteArrayOutputStream();
        final PrintStream errStream = new PrintStream(err, true, StandardCharsets.UTF_8);
        final Progress progress = new Progress(errStream, terminal, interval, clock::get, 100);
        final java.util.Iterator<JsonNode> next = statuses.iterator();
        final PrintStream oldOut = System.out;
        final PrintStream oldErr = System.err;
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        System.setErr(errStream);
        try
        {
            final int code = verb.follow(() ->
            {
                clock.addAndGet(1_000_000_000L);
                return next.hasNext() ? next.next() : statuses.get(statuses.size() - 1);
            }, progress, 0);
            return new Captured(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        }
        finally
        {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    private static JsonNode verifyStatus(final long runs, final String state, final long verified, final long total)
    {
        return new ObjectMapper().createObjectNode().put("runs", runs).put("state", state).put("totalBytes", total)
            .put("verifiedBytes", verified).put("differingBlocks", 0)
            .put("repairedBlocks", 0).put("skippedBlocks", 0);
    }

    private static JsonNode volume(final String replication, final JsonNode verify)
    {
        final com.fasterxml.jackson.databind.node.ObjectNode v = new ObjectMapper().createObjectNode()
            .put("name", "vm1").put("replication", replication);
        v.set("verify", verify);
        return v;
    }

    private static JsonNode resyncStatus(final long connects, final String replication, final long synced, final long total)
    {
        return new ObjectMapper().createObjectNode().put("name", "vm1").put("connects", connects)
            .put("replication", replication).put("disk", "syncing").put("dirtyBytes", 1)
            .put("syncedBytes", synced).put("syncTotalBytes", total);
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
