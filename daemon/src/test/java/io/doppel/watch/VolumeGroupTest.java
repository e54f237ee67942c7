package io.doppel.watch;

import com.fasterxml.jackson.databind.JsonNode;
import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.daemon.ReloadResult;
import io.doppel.replication.DaemonProcesses;
import io.doppel.tools.LoopbackPorts;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Volume groups against real daemons in separate processes: a primary whose {@code path} is a directory or
 * a glob of image files, a standby whose {@code path} is a directory. Every image becomes a volume of its
 * own and converges byte-identical; a file created while the daemons run becomes one too; a file deleted on
 * the primary is reported and its standby copy stays; files the glob leaves out stay out.
 */
class VolumeGroupTest
{
    private static final long MIB = 1L << 20;
    @TempDir
    Path dir;
    private DaemonProcesses daemons;
    private int alphaListen;
    private int alphaAdmin;
    private int betaListen;
    private int betaAdmin;
    private Path images;
    private Path replica;

    @BeforeEach
    void setUp() throws IOException
    {
        daemons = new DaemonProcesses(dir);
        final int[] ports = LoopbackPorts.free(4);
        alphaListen = ports[0];
        alphaAdmin = ports[1];
        betaListen = ports[2];
        betaAdmin = ports[3];
        images = Files.createDirectories(dir.resolve("alpha/images"));
        replica = Files.createDirectories(dir.resolve("beta/replica"));
    }

    @AfterEach
    void killAll()
    {
        daemons.close();
    }

    @Test
    void shouldReplicateEveryImageOfADirectoryTakeNewOnesAndKeepCopiesOfDeletedOnes() throws Exception
    {
        MixedImage.create(images.resolve("a.img"), 8 * MIB, 1);
        MixedImage.create(images.resolve("b.img"), 4 * MIB, 2);
        Files.writeString(images.resolve(".a.img.partial"), "a copy's temporary file: hidden, never a member");
        start(images.toString());

        JsonNode alpha = awaitConverged(List.of("images.a.img", "images.b.img"));
        assertIdentical("a.img");
        assertIdentical("b.img");
        final JsonNode group = alpha.path("groups").path(0);
        assertThat(group.path("name").asText()).isEqualTo("images");
        assertThat(group.path("pattern").asText()).isEqualTo("*");
        assertThat(names(group.path("members"))).containsExactly("images.a.img", "images.b.img");
        assertThat(volume(alpha, "images.a.img").path("group").asText()).isEqualTo("images");
        assertThat(volume(alpha, "images.a.img").path("source").asText()).isEqualTo("watch");
        assertThat(Files.exists(replica.resolve(".a.img.partial"))).isFalse();

        // A new image while both run: a volume of its own, without a restart.
        MixedImage.create(images.resolve("c.img"), 6 * MIB, 3);
        awaitConverged(List.of("images.a.img", "images.b.img", "images.c.img"));
        assertIdentical("c.img");
        final JsonNode beta = daemons.awaitDocument(betaAdmin, d -> names(d.path("groups").path(0).path("members"))
            .size() == 3, 30);
        assertThat(volume(beta, "images.c.img").path("role").asText()).isEqualTo("standby");
        assertThat(volume(beta, "images.c.img").path("group").asText()).isEqualTo("images");
        assertThat(volume(beta, "images.c.img").path("size").asLong()).isEqualTo(6 * MIB);

        // Deleted on the primary: reported there, the standby copy stays as it was.
        final String before = MixedImage.hash(replica.resolve("b.img"));
        Files.delete(images.resolve("b.img"));
        alpha = daemons.awaitDocument(alphaAdmin, d -> d.path("groups").path(0).path("missing").has("b.img"), 30);
        assertThat(alpha.path("groups").path(0).path("missing").path("b.img").asText()).contains("deleted");
        assertThat(volume(alpha, "images.b.img").path("watch").path("error").asText()).contains("deleted or renamed");
        assertThat(metrics(alphaAdmin)).contains("doppel_group_missing_files{group=\"images\",node=\"alpha\"} 1.0")
            .contains("doppel_group_members{group=\"images\",node=\"alpha\"} 3.0");
        Thread.sleep(1_000); // several watch-intervals: nothing on the standby may follow the delete
        assertThat(replica.resolve("b.img")).exists();
        assertThat(MixedImage.hash(replica.resolve("b.img"))).isEqualTo(before);
        assertThat(daemons.log("alpha")).contains("b.img disappeared", "never deleted");
        // The other members carry on.
        MixedImage.mutate(images.resolve("a.img"), 0.01, 4096, 9);
        awaitInSync("images.a.img");
        assertIdentical("a.img");
    }

    @Test
    void shouldTakeOnlyTheFilesAGlobMatches() throws Exception
    {
        MixedImage.create(images.resolve("x.img"), 4 * MIB, 5);
        Files.writeString(images.resolve("notes.txt"), "not an image");
        Files.createDirectories(images.resolve("old.img")); // matches, but is a directory
        start(images.resolve("*.img").toString());

        final JsonNode alpha = awaitConverged(List.of("images.x.img"));
        assertIdentical("x.img");
        final JsonNode group = alpha.path("groups").path(0);
        assertThat(group.path("pattern").asText()).isEqualTo("*.img");
        assertThat(names(group.path("members"))).containsExactly("images.x.img");
        assertThat(group.path("skipped").path("old.img").asText()).contains("not a regular file");
        assertThat(group.path("skipped").has("notes.txt")).as("a file the glob leaves out is not even looked at")
            .isFalse();
        assertThat(volumeNames(alpha)).containsExactly("images.x.img");
        try (Stream<Path> files = Files.list(replica))
        {
            assertThat(files.map(f -> f.getFileName().toString())).containsExactly("x.img");
        }

        // A file that matches later and grows for a while (a copy coming in): not a volume while it grows
        // (a member keeps the size it started with), taken whole once it stops.
        final Path source = dir.resolve("y.source");
        MixedImage.create(source, 2 * MIB, 6);
        final byte[] bytes = Files.readAllBytes(source);
        final Path y = images.resolve("y.img");
        final int chunk = 128 << 10;
        for (int at = 0; at < bytes.length; at += chunk)
        {
            try (var out = Files.newOutputStream(y, java.nio.file.StandardOpenOption.CREATE,
                java.nio.file.StandardOpenOption.APPEND))
            {
                out.write(bytes, at, chunk);
            }
            final JsonNode now = daemons.document(alphaAdmin);
            assertThat(volumeNames(now)).as("members while y.img grows (%d bytes)", at + chunk)
                .doesNotContain("images.y.img");
            Thread.sleep(60); // 16 chunks over about a second: several watch-intervals
        }
        Files.writeString(images.resolve("y.txt"), "still not an image");
        final JsonNode after = awaitConverged(List.of("images.x.img", "images.y.img"));
        assertThat(volume(after, "images.y.img").path("size").asLong()).isEqualTo(2 * MIB);
        assertIdentical("y.img");
        assertThat(replica.resolve("y.txt")).doesNotExist();

        // Replaced by another file of the same name (a copy renamed into place): reported, not followed.
        final String standbyBefore = MixedImage.hash(replica.resolve("x.img"));
        final Path next = images.resolve(".x.img.new");
        MixedImage.create(next, 4 * MIB, 7);
        Files.move(next, images.resolve("x.img"), java.nio.file.StandardCopyOption.REPLACE_EXISTING,
            java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        final JsonNode replaced = daemons.awaitDocument(alphaAdmin, d -> d.path("groups").path(0).path("missing")
            .has("x.img") && !volume(d, "images.x.img").path("watch").path("error").asText().isEmpty(), 30);
        assertThat(replaced.path("groups").path(0).path("missing").path("x.img").asText()).contains("replaced");
        assertThat(volume(replaced, "images.x.img").path("watch").path("error").asText()).contains("replaced by"
            + " another file");
        assertThat(volume(replaced, "images.x.img").path("disk").asText()).isNotEqualTo("up-to-date");
        assertThat(MixedImage.hash(replica.resolve("x.img"))).isEqualTo(standbyBefore);
    }

    @Test
    void shouldReopenHeldMembersAfterARestartWithoutSendingThemAgain() throws Exception
    {
        MixedImage.create(images.resolve("a.img"), 8 * MIB, 11);
        MixedImage.create(images.resolve("b.img"), 8 * MIB, 12);
        Files.writeString(replica.resolve("unrelated.img"), "a file on the standby that no primary named");
        final Process[] both = start(images.toString());
        awaitConverged(List.of("images.a.img", "images.b.img"));
        for (final Process p : both)
        {
            p.destroy(); // SIGTERM: a clean stop
            assertThat(p.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
        }
        // The standby alone: it opens the members it holds (they have metadata), not the unrelated file.
        daemons.start(dir.resolve("beta.toml"), "beta2");
        final JsonNode beta = daemons.awaitDocument(betaAdmin, d -> volumeNames(d).size() == 2, 30);
        assertThat(volumeNames(beta)).containsExactlyInAnyOrder("images.a.img", "images.b.img");
        assertThat(volume(beta, "images.a.img").path("role").asText()).isEqualTo("standby");
        assertThat(volume(beta, "images.a.img").path("disk").asText()).as("a consistent copy, of an earlier moment")
            .isEqualTo("outdated");
        daemons.start(dir.resolve("alpha.toml"), "alpha2");
        final JsonNode alpha = awaitConverged(List.of("images.a.img", "images.b.img"));
        for (final String m : List.of("images.a.img", "images.b.img"))
        {
            assertThat(volume(alpha, m).path("blocksSent").asLong()).as("blocks of %s sent again", m).isZero();
        }
        assertIdentical("a.img");
        assertIdentical("b.img");
        assertThat(Files.readString(replica.resolve("unrelated.img"))).startsWith("a file on the standby");
    }

    @Test
    void shouldReloadAGroupLiveAndLeaveItsMembersOutOfTheFileComparison() throws Exception
    {
        MixedImage.create(images.resolve("a.img"), 4 * MIB, 21);
        final Path betaFile = config("beta", betaListen, betaAdmin, "alpha", alphaListen,
            "path = \"" + replica + "\"\nrole = \"standby\"");
        final Path alphaFile = config("alpha", alphaListen, alphaAdmin, "beta", betaListen,
            "path = \"" + images + "\"\nrole = \"primary\"\nsource = \"watch\"\nwatch-interval = \"200ms\"");
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(betaFile), betaFile);
             DoppelNode alpha = DoppelNode.start(ConfigLoader.load(alphaFile), alphaFile))
        {
            awaitConverged(List.of("images.a.img"));
            // Unchanged file: the members (not in the file by name) are not "removed", the group not "added".
            ReloadResult r = alpha.reloadFromFile();
            assertThat(r.accepted()).as(r.toString()).isTrue();
            assertThat(r.changes()).isEmpty();
            assertThat(beta.reloadFromFile().changes()).isEmpty();
            // A live setting of the group reaches its members.
            Files.writeString(alphaFile, Files.readString(alphaFile) + "compression = \"zstd\"\n");
            r = alpha.reloadFromFile();
            assertThat(r.changes()).containsExactly("images: compression lz4 -> zstd");
            assertThat(alpha.primary("images.a.img").state().config().compression().configName()).isEqualTo("zstd");
            assertThat(alpha.primary("images.a.img").state().config().group()).isEqualTo("images");
            // Its directory cannot change live.
            final Path other = Files.createDirectories(dir.resolve("alpha/other"));
            Files.writeString(alphaFile, Files.readString(alphaFile).replace(images.toString(), other.toString()));
            r = alpha.reloadFromFile();
            assertThat(r.accepted()).isFalse();
            assertThat(r.refused()).singleElement().asString().contains("images: path", "restart");
        }
    }

    private Process[] start(final String alphaPath) throws IOException
    {
        final Process beta = daemons.start(config("beta", betaListen, betaAdmin, "alpha", alphaListen,
            "path = \"" + replica + "\"\nrole = \"standby\""), "beta");
        final Process alpha = daemons.start(config("alpha", alphaListen, alphaAdmin, "beta", betaListen,
            "path = \"" + alphaPath + "\"\nrole = \"primary\"\nsource = \"watch\"\nwatch-interval = \"200ms\"\n"
                + "watch-rate = \"1GiB\""), "alpha");
        return new Process[] {alpha, beta};
    }

    private Path config(final String node, final int listen, final int admin, final String peer, final int peerPort,
        final String volume) throws IOException
    {
        final Path file = dir.resolve(node + ".toml");
        Files.writeString(file, String.join("\n",
            "[node]",
            "name = \"" + node + "\"",
            "listen = \"127.0.0.1:" + listen + "\"",
            "admin = \"127.0.0.1:" + admin + "\"",
            "data-dir = \"" + dir.resolve(node + "/data") + "\"",
            "heartbeat-interval = \"500ms\"",
            "heartbeat-timeout = \"5s\"",
            "",
            "[[peer]]",
            "name = \"" + peer + "\"",
            "address = \"127.0.0.1:" + peerPort + "\"",
            "",
            "[[volume]]",
            "name = \"images\"",
            volume,
            ""));
        return file;
    }

    /** Every one of {@code members} is on alpha, in sync and settled; returns alpha's /status. */
    private JsonNode awaitConverged(final List<String> members) throws Exception
    {
        return daemons.awaitDocument(alphaAdmin, d -> volumeNames(d).containsAll(members)
            && members.stream().allMatch(m -> DaemonProcesses.inSync(volume(d, m))
                && volume(d, m).path("watch").path("quiet").asBoolean()), 120);
    }

    private void awaitInSync(final String member) throws Exception
    {
        final long scans = volume(daemons.document(alphaAdmin), member).path("watch").path("scans").asLong();
        daemons.awaitDocument(alphaAdmin, d -> DaemonProcesses.inSync(volume(d, member))
            && volume(d, member).path("watch").path("quiet").asBoolean()
            && volume(d, member).path("watch").path("scans").asLong() >= scans + 2, 120);
    }

    private void assertIdentical(final String file) throws Exception
    {
        daemons.awaitDocument(betaAdmin, d -> "up-to-date".equals(volume(d, "images." + file).path("disk").asText()),
            30);
        assertThat(MixedImage.hash(replica.resolve(file))).as("standby copy of %s", file)
            .isEqualTo(MixedImage.hash(images.resolve(file)));
    }

    private static JsonNode volume(final JsonNode status, final String name)
    {
        for (final JsonNode v : status.path("volumes"))
        {
            if (v.path("name").asText().equals(name))
            {
                return v;
            }
        }
        return com.fasterxml.jackson.databind.node.MissingNode.getInstance();
    }

    private static List<String> volumeNames(final JsonNode status)
    {
        final List<String> names = new ArrayList<>();
        status.path("volumes").forEach(v -> names.add(v.path("name").asText()));
        return names;
    }

    private static List<String> names(final JsonNode array)
    {
        final List<String> names = new ArrayList<>();
        array.forEach(n -> names.add(n.asText()));
        return names;
    }

    private static String metrics(final int adminPort) throws Exception
    {
        return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + adminPort
            + "/metrics")).build(), HttpResponse.BodyHandlers.ofString()).body();
    }
}
