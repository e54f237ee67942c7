package io.doppel.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.twoway.TwoWayVolume;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;

import static io.doppel.cli.CliRun.freePort;
import static io.doppel.cli.CliRun.run;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@code doppel conflicts}: two two-way nodes write the same blocks while apart (one stopped), the later
 * writes win when they meet, and the command lists, on each node, the conflicts that node resolved.
 */
class ConflictsCommandTest
{
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    @Test
    void listsTheConflictsEachNodeResolvedAsATableAndAsJson() throws Exception
    {
        final int[] listen = {freePort(), freePort()};
        final int[] admin = {freePort(), freePort()};
        final Path alphaConfig = config("alpha", listen[0], admin[0], "beta", listen[1]);
        final Path betaConfig = config("beta", listen[1], admin[1], "alpha", listen[0]);

        try (DoppelNode alpha = DoppelNode.start(ConfigLoader.load(alphaConfig)))
        {
            for (int b = 0; b < 3; b++)
            {
                write(alpha.twoWay("vm1"), b, 0xaa); // beta is not running: owed, not sent
            }
        }
        try (DoppelNode beta = DoppelNode.start(ConfigLoader.load(betaConfig)))
        {
            Thread.sleep(5);
            for (int b = 0; b < 3; b++)
            {
                write(beta.twoWay("vm1"), b, 0xbb); // later: these win
            }
            try (DoppelNode alpha = DoppelNode.start(ConfigLoader.load(alphaConfig)))
            {
                final TwoWayVolume a = alpha.twoWay("vm1");
                final TwoWayVolume b = beta.twoWay("vm1");
                final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                while (!(a.state().connected() && b.state().connected() && a.nothingOwed() && b.nothingOwed()))
                {
                    assertThat(System.nanoTime()).as("the nodes never converged").isLessThan(deadline);
                    Thread.sleep(20);
                }
                assertThat(a.status().conflicts() + b.status().conflicts()).as("each of the 3 resolved at least once")
                    .isGreaterThanOrEqualTo(3);
                for (final TwoWayVolume v : new TwoWayVolume[] {a, b})
                {
                    final String where = "127.0.0.1:" + (v == a ? admin[0] : admin[1]);
                    final CliRun.Result table = run("conflicts", "vm1", "--admin", where);
                    assertThat(table.code()).as(table.out() + table.err()).isZero();
                    final long count = v.status().conflicts();
                    assertThat(table.out()).contains(count + " conflict(s) since start");
                    assertThat(table.out().lines().filter(l -> l.contains(" beta ") && l.contains(" alpha ")).count())
                        .as("one row per conflict, beta the winner:\n" + table.out()).isEqualTo(count);

                    final CliRun.Result json = run("conflicts", "vm1", "--json", "--admin", where);
                    assertThat(json.code()).isZero();
                    final JsonNode answer = new ObjectMapper().readTree(json.out());
                    assertThat(answer.path("count").asLong()).isEqualTo(count);
                    for (final JsonNode c : answer.path("conflicts"))
                    {
                        assertThat(c.path("winner").path("node").asText()).isEqualTo("beta");
                        assertThat(c.path("loser").path("node").asText()).isEqualTo("alpha");
                        assertThat(c.path("offset").asLong()).isLessThan(3L * BLOCK);
                    }
                }
                final CliRun.Result missing = run("conflicts", "vm9", "--admin", "127.0.0.1:" + admin[0]);
                assertThat(missing.code()).isEqualTo(1);
                assertThat(missing.err()).contains("no volume named \"vm9\"");
            }
        }
    }

    private static void write(final TwoWayVolume v, final int block, final int value)
    {
        final byte[] bytes = new byte[BLOCK];
        Arrays.fill(bytes, (byte)value);
        v.write((long)block * BLOCK, ByteBuffer.allocateDirect(BLOCK).put(bytes).flip());
    }

    private Path config(final String node, final int listen, final int admin, final String peer, final int peerPort)
        throws Exception
    {
        Files.createDirectories(dir.resolve(node));
        final Path file = dir.resolve(node + ".toml");
        Files.writeString(file, String.join("\n",
            "[node]",
            "name = \"" + node + "\"",
            "listen = \"127.0.0.1:" + listen + "\"",
            "admin = \"127.0.0.1:" + admin + "\"",
            "data-dir = \"" + dir.resolve(node) + "\"",
            "[[peer]]",
            "name = \"" + peer + "\"",
            "address = \"127.0.0.1:" + peerPort + "\"",
            "[[volume]]",
            "name = \"vm1\"",
            "mode = \"two-way\"",
            "path = \"" + dir.resolve(node).resolve("vm1.img") + "\"",
            "size = " + (4 << 20),
            ""));
        return file;
    }
}
