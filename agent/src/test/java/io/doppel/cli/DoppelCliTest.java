package io.doppel.cli;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static io.doppel.cli.CliRun.freePort;
import static io.doppel.cli.CliRun.run;
import static org.assertj.core.api.Assertions.assertThat;

/** The command line against a real running node: status as a table and as JSON, and the failure paths. */
class DoppelCliTest
{
    @TempDir
    Path dir;

    @Test
    void statusPrintsTheTableAndTheJsonOfARunningNode() throws Exception
    {
        final int listen = freePort();
        final int admin = freePort();
        final Path image = dir.resolve("vm1.img");
        MixedImage.create(image, 8 << 20, 1);
        final Path config = dir.resolve("standby.toml");
        Files.writeString(config, String.join("\n",
            "[node]", "name = \"beta\"", "listen = \"127.0.0.1:" + listen + "\"",
            "admin = \"127.0.0.1:" + admin + "\"", "data-dir = \"" + dir + "\"",
            "[[peer]]", "name = \"alpha\"", "address = \"127.0.0.1:1\"",
            "[[volume]]", "name = \"vm1\"", "path = \"" + image + "\"", "role = \"standby\"", ""));
        try (DoppelNode node = DoppelNode.start(ConfigLoader.load(config)))
        {
            final CliRun.Result table = run("status", "--config", config.toString());
            assertThat(table.code()).isZero();
            assertThat(table.out()).contains("node beta").contains("VOLUME").contains("vm1").contains("standby")
                .contains("alpha (down)").contains("8.0 MiB");

            assertThat(table.out()).contains("LAG");
            final CliRun.Result watched = run("status", "--watch", "--count", "2", "--interval", "0.2", "--admin",
                "127.0.0.1:" + admin);
            assertThat(watched.code()).isZero();
            assertThat(watched.out().split("node beta", -1)).as("two tables").hasSize(3);
            assertThat(watched.out()).contains("vm1: sent 0 B/s, received 0 B/s, sync ETA -");

            final CliRun.Result json = run("status", "--json", "--admin", "127.0.0.1:" + admin);
            assertThat(json.code()).isZero();
            assertThat(json.out()).contains("\"node\" : \"beta\"").contains("\"role\" : \"standby\"")
                .contains("\"size\" : " + (8 << 20)).contains("\"blockSize\" : 4096");
        }
    }

    @Test
    void statusOfANodeThatIsNotRunningExitsOneAndSaysWhere() throws Exception
    {
        final int port = freePort();
        final CliRun.Result r = run("status", "--admin", "127.0.0.1:" + port);
        assertThat(r.code()).isEqualTo(1);
        assertThat(r.err()).contains("cannot reach the admin endpoint at http://127.0.0.1:" + port + "/status")
            .contains("is the daemon running?");
    }

    @Test
    void unknownOptionIsAUsageErrorWithExitTwo()
    {
        final CliRun.Result r = run("status", "--no-such-option");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("--no-such-option");
    }

    @Test
    void hashImageTellsEqualAndDifferentFilesApart() throws Exception
    {
        final Path a = dir.resolve("a.img");
        final Path b = dir.resolve("b.img");
        MixedImage.create(a, 3 << 20, 5);
        Files.copy(a, b);
        final String same = run("hash-image", a.toString(), b.toString()).out();
        final String[] lines = same.split("\n");
        assertThat(lines[0].split(" ")[0]).isEqualTo(lines[1].split(" ")[0]);
        MixedImage.mutate(b, 0.1, 4096, 9);
        final String[] after = run("hash-image", a.toString(), b.toString()).out().split("\n");
        assertThat(after[0].split(" ")[0]).isNotEqualTo(after[1].split(" ")[0]);
    }
}
