package io.doppel.cli;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static io.doppel.cli.CliRun.freePort;
import static io.doppel.cli.CliRun.run;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@code doppel reload}, as {@code systemctl reload} runs it: prints each applied change and exits 0;
 * prints each refused change and exits 1 while the daemon keeps its old config; exits 4 with a wrong admin
 * token (nothing reloaded); exits 1 when no daemon answers. The token comes from the config's data-dir
 * (also for a config that fails validation) or --token-file.
 */
class ReloadCommandTest
{
    @TempDir
    Path dir;

    @Test
    void printsAppliedChangesAndFailsOnRefusedOnes() throws Exception
    {
        final int admin = freePort();
        final Path image = dir.resolve("vm1.img");
        final Path file = dir.resolve("beta.toml");
        Files.writeString(file, String.join("\n",
            "[node]", "name = \"beta\"", "listen = \"127.0.0.1:" + freePort() + "\"",
            "admin = \"127.0.0.1:" + admin + "\"", "data-dir = \"" + dir + "\"",
            "[[peer]]", "name = \"alpha\"", "address = \"127.0.0.1:" + freePort() + "\"",
            "[[volume]]", "name = \"vm1\"", "path = \"" + image + "\"", "size = \"4MiB\"",
            "role = \"standby\"", "peer = \"alpha\"", "compression = \"lz4\"", ""));
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(file), file))
        {
            CliRun.Result r = run("reload", "--config", file.toString());
            assertThat(r.code()).as(r.err()).isZero();
            assertThat(r.out()).isEqualTo("reloaded: no changes\n");

            Files.writeString(file, Files.readString(file).replace("\"lz4\"", "\"zstd\""));
            final Path stranger = dir.resolve("stranger.token");
            Files.writeString(stranger, "fedcba9876543210fedcba9876543210");
            r = run("reload", "--admin", "127.0.0.1:" + admin, "--token-file", stranger.toString());
            assertThat(r.code()).as("a wrong token: not allowed, nothing reloaded").isEqualTo(DoppelCli.EXIT_NOT_ALLOWED);
            assertThat(r.err()).contains("reload not allowed by the daemon").contains("does not match");
            assertThat(beta.standby("vm1").config().compression().configName()).isEqualTo("lz4");

            r = run("reload", "--admin", "127.0.0.1:" + admin, "--token-file", dir.resolve("admin.token").toString());
            assertThat(r.code()).as(r.err()).isZero();
            assertThat(r.out()).isEqualTo("reloaded: vm1: compression lz4 -> zstd\n");
            assertThat(beta.standby("vm1").config().compression().configName()).isEqualTo("zstd");

            Files.writeString(file, Files.readString(file).replace("vm1.img", "other.img")
                .replace("\"zstd\"", "\"none\""));
            r = run("reload", "--config", file.toString());
            assertThat(r.code()).isEqualTo(1);
            assertThat(r.err()).contains("reload refused; the daemon goes on with its old config:")
                .contains("vm1: path " + image + " -> " + dir.resolve("other.img") + " cannot change live");
            assertThat(beta.standby("vm1").config().compression().configName()).isEqualTo("zstd");

            // A file that fails validation still reaches the daemon, which refuses it with the loader's message.
            Files.writeString(file, Files.readString(file).replace("other.img", "vm1.img")
                .replace("compression = \"none\"", "compression = \"brotli\""));
            r = run("reload", "--config", file.toString());
            assertThat(r.code()).isEqualTo(1);
            assertThat(r.err()).contains("reload refused").contains("compression=\"brotli\"");
        }
        final CliRun.Result gone = run("reload", "--config", file.toString());
        assertThat(gone.code()).isEqualTo(1);
        assertThat(gone.err()).contains("cannot reach the admin endpoint");
    }
}
