package io.doppel.replication;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.doppel.daemon.DaemonMain;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * Daemons as separate processes for fault tests (they must be killable with SIGKILL), each logging to
 * {@code <dir>/<name>.log}, and polling of their {@code /status}. Public for the NBD tests.
 */
public final class DaemonProcesses implements AutoCloseable
{
    private static final ObjectMapper JSON = new ObjectMapper();
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    private final List<Process> processes = new ArrayList<>();
    private final Path dir;

    public DaemonProcesses(final Path dir)
    {
        this.dir = dir;
    }

    /** Starts {@code doppel daemon --config config} in a new JVM; its output goes to {@code name.log}. */
    public Process start(final Path config, final String name) throws IOException
    {
        return start(config, name, new String[0]);
    }

    /** As {@link #start(Path, String)}, with extra environment variables given as name, value, name, value, … */
    public Process start(final Path config, final String name, final String... environment) throws IOException
    {
        final String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        final ProcessBuilder pb = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-Xmx512m",
            "-cp", System.getProperty("java.class.path"), DaemonMain.class.getName(), "--config", config.toString())
            .redirectErrorStream(true)
            .redirectOutput(dir.resolve(name + ".log").toFile());
        for (int i = 0; i + 1 < environment.length; i += 2)
        {
            pb.environment().put(environment[i], environment[i + 1]);
        }
        final Process p = pb.start();
        processes.add(p);
        return p;
    }

    /** SIGKILL, and wait until the process is gone. */
    public static void kill(final Process p) throws InterruptedException
    {
        p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
    }

    /** The first volume of a daemon's /status, or null when it does not answer. */
    public JsonNode status(final int adminPort) throws InterruptedException
    {
        try
        {
            final HttpResponse<String> r = http.send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + adminPort + "/status")).timeout(Duration.ofSeconds(5)).build(),
                HttpResponse.BodyHandlers.ofString());
            return JSON.readTree(r.body()).path("volumes").path(0);
        }
        catch (final IOException e)
        {
            return null; // not listening (yet)
        }
    }

    /** A daemon's whole /status document, or null when it does not answer. */
    public JsonNode document(final int adminPort) throws InterruptedException
    {
        try
        {
            final HttpResponse<String> r = http.send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + adminPort + "/status")).timeout(Duration.ofSeconds(5)).build(),
                HttpResponse.BodyHandlers.ofString());
            return JSON.readTree(r.body());
        }
        catch (final IOException e)
        {
            return null; // not listening (yet)
        }
    }

    /** Polls a daemon's whole /status until it satisfies {@code done}; returns it. */
    public JsonNode awaitDocument(final int adminPort, final Predicate<JsonNode> done, final int seconds)
        throws Exception
    {
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        JsonNode last = null;
        while (System.nanoTime() < deadline)
        {
            final JsonNode now = document(adminPort);
            if (now != null)
            {
                last = now;
                if (done.test(now))
                {
                    return now;
                }
            }
            Thread.sleep(100);
        }
        throw new AssertionError("status on admin port " + adminPort + " never reached the wanted state in "
            + seconds + " s; last: " + last + "\nlogs:\n" + logs());
    }

    /** Polls a daemon's /status until its first volume satisfies {@code done}; returns that volume's JSON. */
    public JsonNode awaitStatus(final int adminPort, final Predicate<JsonNode> done, final int seconds)
        throws Exception
    {
        return awaitDocument(adminPort, d -> done.test(d.path("volumes").path(0)), seconds).path("volumes").path(0);
    }

    /** Streaming, up to date, nothing dirty or in flight: the primary's view of a standby in sync. */
    public static boolean inSync(final JsonNode v)
    {
        return "streaming".equals(v.path("replication").asText()) && "up-to-date".equals(v.path("disk").asText())
            && v.path("dirtyBytes").asLong() == 0 && v.path("sentSeq").asLong() == v.path("ackedSeq").asLong();
    }

    /** Every daemon log in the directory, for failure messages. */
    public String logs() throws IOException
    {
        final StringBuilder sb = new StringBuilder();
        try (var files = Files.list(dir))
        {
            for (final Path p : (Iterable<Path>)files.filter(f -> f.toString().endsWith(".log"))::iterator)
            {
                sb.append("--- ").append(p.getFileName()).append('\n').append(Files.readString(p));
            }
        }
        return sb.toString();
    }

    public String log(final String name) throws IOException
    {
        return Files.readString(dir.resolve(name + ".log"));
    }

    @Override
    public void close()
    {
        processes.forEach(Process::destroyForcibly);
        for (final Process p : processes)
        {
            try
            {
                p.waitFor(10, TimeUnit.SECONDS);
            }
            catch (final InterruptedException e)
            {
                Thread.currentThread().interrupt();
            }
        }
    }
}
