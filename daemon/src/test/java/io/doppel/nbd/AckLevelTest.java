package io.doppel.nbd;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.doppel.daemon.DaemonMain;
import io.doppel.tools.LoopbackPorts;
import io.doppel.tools.MixedImage;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Acknowledgement levels seen from a real NBD client: with {@code sync}, a FUA write's reply waits while
 * the standby process is frozen (SIGSTOP) and comes as soon as it thaws; with {@code async} it does not
 * wait. The standby then holds the written pattern.
 */
class AckLevelTest
{
    private static final long SIZE = 32L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();
    private final List<Process> processes = new ArrayList<>();

    @TempDir
    Path dir;

    @AfterEach
    void killAll()
    {
        for (final Process p : processes)
        {
            signal(p, "CONT");
            p.destroyForcibly();
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"sync", "received", "async"})
    void fuaWriteReplyWaitsForTheStandbyOnlyWhenTheLevelSaysSo(final String ack) throws Exception
    {
        Assumptions.assumeTrue(exists("qemu-io"), "SKIPPED: qemu-io not installed (apt-get install qemu-utils)");
        final int[] ports = LoopbackPorts.free(6);
        final Path alphaImage = dir.resolve("alpha.img");
        final Path betaImage = dir.resolve("beta.img");
        MixedImage.create(alphaImage, SIZE, 3);
        final Path beta = config("beta", ports[2], ports[3], "alpha", ports[0], betaImage, "standby", ack,
            "127.0.0.1:" + ports[5]);
        final Path alpha = config("alpha", ports[0], ports[1], "beta", ports[2], alphaImage, "primary", ack,
            "127.0.0.1:" + ports[4]);
        final Process standby = start(beta, "beta");
        start(alpha, "alpha");
        awaitStatus(ports[1], v -> "up-to-date".equals(v.path("disk").asText()), 60);
        final String primaryUri = "nbd://127.0.0.1:" + ports[4] + "/vm1";

        signal(standby, "STOP");
        final long start = System.nanoTime();
        final CompletableFuture<String> write = CompletableFuture.supplyAsync(() ->
            run("qemu-io", "-f", "raw", primaryUri, "-c", "write -f -P 0x5a 1000000 70000"));
        Thread.sleep(2_000);
        if (ack.equals("async"))
        {
            assertThat(write).as("async: the FUA write is acknowledged without the standby").isDone();
            signal(standby, "CONT");
        }
        else
        {
            assertThat(write).as(ack + ": no reply while the standby is frozen").isNotDone();
            signal(standby, "CONT");
            final String out = write.get(2_500, TimeUnit.MILLISECONDS); // well before the 5 s heartbeat timeout
            assertThat(out).contains("wrote 70000/70000 bytes");
            assertThat((System.nanoTime() - start) / 1e9).isGreaterThan(1.9);
        }
        assertThat(write.get(10, TimeUnit.SECONDS)).contains("wrote 70000/70000 bytes");
        final JsonNode v = awaitStatus(ports[1], s -> "up-to-date".equals(s.path("disk").asText())
            && s.path("logBytes").asLong() == 0 && s.path("dirtyBytes").asLong() == 0, 30);
        assertThat(v.path("ack").asText()).isEqualTo(ack);
        assertThat(v.path("degradedAcks").asLong()).as("no reply was given up on").isZero();
        final String standbyUri = "nbd://127.0.0.1:" + ports[5] + "/vm1";
        final String check = run("qemu-io", "-r", "-f", "raw", standbyUri, "-c", "read -P 0x5a 1000000 70000");
        assertThat(check).contains("read 70000/70000 bytes").doesNotContain("Pattern verification failed");
    }

    private Path config(final String node, final int listen, final int admin, final String peer, final int peerPort,
        final Path image, final String role, final String ack, final String nbd) throws IOException
    {
        final Path file = dir.resolve(node + ".toml");
        Files.writeString(file, String.join("\n",
            "[node]", "name = \"" + node + "\"", "listen = \"127.0.0.1:" + listen + "\"",
            "admin = \"127.0.0.1:" + admin + "\"", "data-dir = \"" + dir.resolve(node) + "\"",
            "heartbeat-interval = \"500ms\"", "heartbeat-timeout = \"5s\"",
            "[[peer]]", "name = \"" + peer + "\"", "address = \"127.0.0.1:" + peerPort + "\"",
            "[[volume]]", "name = \"vm1\"", "path = \"" + image + "\"", "size = " + SIZE,
            "role = \"" + role + "\"", "ack = \"" + ack + "\"", "nbd = \"" + nbd + "\"", ""));
        return file;
    }

    private Process start(final Path config, final String name) throws IOException
    {
        final String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        final Process p = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-Xmx256m", "-cp",
            System.getProperty("java.class.path"), DaemonMain.class.getName(), "--config", config.toString())
            .redirectErrorStream(true).redirectOutput(dir.resolve(name + ".log").toFile()).start();
        processes.add(p);
        return p;
    }

    private static void signal(final Process p, final String signal)
    {
        try
        {
            new ProcessBuilder("kill", "-" + signal, String.valueOf(p.pid())).start().waitFor(5, TimeUnit.SECONDS);
        }
        catch (final IOException | InterruptedException e)
        {
            throw new AssertionError("kill -" + signal + " failed", e);
        }
    }

    private JsonNode awaitStatus(final int adminPort, final java.util.function.Predicate<JsonNode> done,
        final int seconds) throws Exception
    {
        final HttpClient http = HttpClient.newHttpClient();
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        JsonNode last = null;
        while (System.nanoTime() < deadline)
        {
            try
            {
                last = JSON.readTree(http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + adminPort
                    + "/status")).timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString()).body())
                    .path("volumes").path(0);
                if (done.test(last))
                {
                    return last;
                }
            }
            catch (final IOException e)
            {
                // not up yet
            }
            Thread.sleep(100);
        }
        throw new AssertionError("status never reached the wanted state; last: " + last + "\n" + logs());
    }

    private String logs() throws IOException
    {
        final StringBuilder sb = new StringBuilder();
        for (final String n : new String[] {"alpha", "beta"})
        {
            final Path p = dir.resolve(n + ".log");
            if (Files.exists(p))
            {
                sb.append("--- ").append(n).append('\n').append(Files.readString(p));
            }
        }
        return sb.toString();
    }

    static String run(final String... command)
    {
        try
        {
            final Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
            final String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(60, TimeUnit.SECONDS))
            {
                p.destroyForcibly();
                throw new AssertionError(String.join(" ", command) + " did not finish: " + out);
            }
            if (p.exitValue() != 0)
            {
                throw new AssertionError(String.join(" ", command) + " exited " + p.exitValue() + ": " + out);
            }
            return out;
        }
        catch (final IOException | InterruptedException e)
        {
            throw new AssertionError(e);
        }
    }

    static boolean exists(final String tool)
    {
        for (final String dirName : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":"))
        {
            if (Files.isExecutable(Path.of(dirName, tool)))
            {
                return true;
            }
        }
        return false;
    }
}
