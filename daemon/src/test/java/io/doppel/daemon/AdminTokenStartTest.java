package io.doppel.daemon;

import io.doppel.config.ConfigLoader;
import io.doppel.tools.LoopbackPorts;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A daemon's first start makes {@code <data-dir>/admin.token} (0600, 64 hex digits) and the next start keeps
 * it; a token file that group or others can read stops the start with exit code 2 (a restart cannot fix it)
 * before any volume is opened; {@code [node].admin-token-file} puts it elsewhere.
 */
class AdminTokenStartTest
{
    @TempDir
    Path dir;

    @Test
    void firstStartMakesTheTokenAndAnExposedOneStopsTheStart() throws Exception
    {
        final Path config = config(null);
        final Path token = dir.resolve("data/admin.token");
        try (DoppelNode node = DoppelNode.start(ConfigLoader.load(config), config))
        {
            assertThat(node.admin().address().getPort()).isPositive();
        }
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(token))).isEqualTo("rw-------");
        final String made = Files.readString(token);
        assertThat(made).matches("[0-9a-f]{64}\n");
        try (DoppelNode node = DoppelNode.start(ConfigLoader.load(config), config))
        {
            assertThat(Files.readString(token)).as("kept on the next start").isEqualTo(made);
        }

        Files.delete(dir.resolve("data/vm1.img"));
        Files.setPosixFilePermissions(token, PosixFilePermissions.fromString("rw-r--r--"));
        // (bounded: were the token accepted, run would serve until stopped)
        assertThat(org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(60),
            () -> DaemonMain.run(config))).as("exit code: bad config, not worth a restart").isEqualTo(DaemonMain.EXIT_CONFIG);
        assertThat(dir.resolve("data/vm1.img")).as("no volume was opened").doesNotExist();
    }

    @Test
    void adminTokenFilePutsItElsewhere() throws Exception
    {
        final Path elsewhere = dir.resolve("etc/doppel/admin.token");
        final Path config = config(elsewhere);
        try (DoppelNode node = DoppelNode.start(ConfigLoader.load(config), config))
        {
            assertThat(elsewhere).exists();
            assertThat(dir.resolve("data/admin.token")).doesNotExist();
        }
    }

    private Path config(final Path tokenFile) throws Exception
    {
        final int[] ports = LoopbackPorts.free(3);
        final Path file = dir.resolve("node.toml");
        Files.writeString(file, String.join("\n",
            "[node]", "name = \"alpha\"", "listen = \"127.0.0.1:" + ports[0] + "\"",
            "admin = \"127.0.0.1:" + ports[1] + "\"", "data-dir = \"" + dir.resolve("data") + "\"",
            tokenFile == null ? "" : "admin-token-file = \"" + tokenFile + "\"",
            "[[peer]]", "name = \"beta\"", "address = \"127.0.0.1:" + ports[2] + "\"",
            "[[volume]]", "name = \"vm1\"", "path = \"" + dir.resolve("data/vm1.img") + "\"", "size = \"1MiB\"",
            "role = \"standby\"", ""));
        return file;
    }
}
