package io.doppel.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.doppel.config.Units;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;

/**
 * The operator's verbs on a running daemon's volume, sent to its admin endpoint as
 * {@code POST /volumes/VOL/VERB}. Exit codes: 0 done, 1 the daemon refused or could not be reached, or
 * verify found differences it did not repair, 2 bad usage.
 */
final class VerbCommands
{
    private static final ObjectMapper JSON = new ObjectMapper();

    private VerbCommands()
    {
    }

    /** Shared: the volume and where its daemon is. */
    abstract static class Verb implements Callable<Integer>
    {
        @Parameters(index = "0", paramLabel = "VOL", description = "the volume's name")
        String volume;

        @Mixin
        AdminOptions where = new AdminOptions();

        abstract String verb();

        String query()
        {
            return "";
        }

        @Override
        public Integer call() throws Exception
        {
            final String address = where.address();
            if (address == null)
            {
                return 2;
            }
            if (!before(address))
            {
                return 1;
            }
            final JsonNode answer = post(address, volume, verb(), query());
            if (answer == null)
            {
                return 1;
            }
            System.out.println(volume + ": " + answer.path("message").asText());
            return afterwards(address);
        }

        /** What to note before sending the verb; false after printing why the verb cannot be sent. */
        boolean before(final String address) throws Exception
        {
            return true;
        }

        /** What to do once the daemon accepted the verb (wait for a long one); the exit code. */
        int afterwards(final String address) throws Exception
        {
            return 0;
        }
    }

    /** A verb whose work goes on in the daemon: it waits and shows progress unless --no-wait. */
    abstract static class WaitingVerb extends Verb
    {
        @Option(names = "--no-wait", description = "return once the daemon accepted the request")
        boolean noWait;

        @Option(names = "--timeout", defaultValue = "3600", paramLabel = "SECONDS",
            description = "give up waiting after this long (default: ${DEFAULT-VALUE})")
        long timeoutSeconds;

        /** The counter in the volume's status that tells this request's run from earlier ones, before it. */
        long counterBefore;

        /** That counter in a status document (e.g. links made, verifies started). */
        abstract long counter(JsonNode volumeStatus);

        @Override
        boolean before(final String address) throws Exception
        {
            final JsonNode v = volumeStatus(address, volume);
            if (v == null)
            {
                return false;
            }
            counterBefore = counter(v);
            return true;
        }

        /** Whether the status shows this request's run (the counter moved on). */
        boolean ours(final JsonNode v)
        {
            return counter(v) > counterBefore;
        }
    }

    @Command(name = "pause", mixinStandardHelpOptions = true,
        description = "Stop replicating VOL (on its primary): the link is closed, writes go on and are tracked.")
    static final class Pause extends Verb
    {
        @Override
        String verb()
        {
            return "pause";
        }
    }

    @Command(name = "resume", mixinStandardHelpOptions = true,
        description = "Replicate VOL again after pause: the standby resyncs from the dirty map.")
    static final class Resume extends Verb
    {
        @Override
        String verb()
        {
            return "resume";
        }
    }

    @Command(name = "resync", mixinStandardHelpOptions = true,
        description = {"Compare the whole of VOL with its standby by hash and send what differs (a full resync),"
            + " showing progress until the standby is up to date again.",
            "Exit 0: done; 1: refused, or not done within --timeout (it goes on in the daemon)."})
    static final class Resync extends WaitingVerb
    {
        @Override
        String verb()
        {
            return "resync";
        }

        /** Links made: the resync runs on the next one. */
        @Override
        long counter(final JsonNode v)
        {
            return v.path("connects").asLong();
        }

        @Override
        int afterwards(final String address) throws Exception
        {
            if (noWait)
            {
                return 0;
            }
            return watch(address, volume, timeoutSeconds, "resync", v ->
            {
                if (ours(v) && "streaming".equals(v.path("replication").asText())
                    && "up-to-date".equals(v.path("disk").asText()) && v.path("dirtyBytes").asLong() == 0)
                {
                    System.out.println(volume + ": resync done: " + Units.formatBytes(v.path("syncBytesSent").asLong())
                        + " sent; the standby is up to date");
                    return 0;
                }
                return null;
            }, v ->
            {
                final long total = v.path("syncTotalBytes").asLong();
                return ours(v) && total > 0
                    ? String.format(Locale.ROOT, "resync %s: %s, %.0f%% of %s compared", volume,
                        v.path("replication").asText(), 100.0 * v.path("syncedBytes").asLong() / total,
                        Units.formatBytes(total))
                    : "waiting for " + volume + " to reconnect (replication " + v.path("replication").asText() + ")";
            });
        }
    }

    @Command(name = "promote", mixinStandardHelpOptions = true,
        description = {"Make this node primary for VOL at once: its NBD export turns read-write and it replicates"
            + " to its peer. Refused while a primary feeds it, and for an inconsistent or in-doubt copy unless --force.",
            "Lasts until the daemon restarts: change role in the config to keep it."})
    static final class Promote extends Verb
    {
        @Option(names = "--force", description = "promote even an inconsistent or in-doubt copy")
        boolean force;

        @Override
        String verb()
        {
            return "promote";
        }

        @Override
        String query()
        {
            return force ? "force=true" : "";
        }
    }

    @Command(name = "demote", mixinStandardHelpOptions = true,
        description = {"Make this node standby for VOL at once: writes are refused, NBD clients are disconnected"
            + " and the export turns read-only; what was written is given up to 5 s to reach the peer.",
            "Lasts until the daemon restarts: change role in the config to keep it."})
    static final class Demote extends Verb
    {
        @Override
        String verb()
        {
            return "demote";
        }
    }

    @Command(name = "verify", mixinStandardHelpOptions = true,
        description = {"Compare VOL with its standby block by block, online, while it replicates, and report the"
            + " blocks that differ. Blocks being written during the compare are skipped.",
            "Exit 0: no difference (or all repaired); 1: differences found, or the verify did not finish."})
    static final class Verify extends WaitingVerb
    {
        @Option(names = "--repair", description = "send differing blocks again")
        boolean repair;

        @Override
        String verb()
        {
            return "verify";
        }

        /** Verifies started: ours is the next one. */
        @Override
        long counter(final JsonNode v)
        {
            return v.path("verify").path("runs").asLong();
        }

        @Override
        String query()
        {
            return repair ? "repair=true" : "";
        }

        @Override
        int afterwards(final String address) throws Exception
        {
            if (noWait)
            {
                return 0;
            }
            return watch(address, volume, timeoutSeconds, "verify", v ->
            {
                final JsonNode verify = v.path("verify");
                final String state = verify.path("state").asText();
                return ours(v) && !"running".equals(state) ? report(verify, state) : null;
            }, v ->
            {
                final JsonNode verify = v.path("verify");
                final long total = verify.path("totalBytes").asLong();
                return ours(v) && total > 0
                    ? String.format(Locale.ROOT, "verifying %s: %.0f%% of %s, %d differing so far", volume,
                        100.0 * verify.path("verifiedBytes").asLong() / total, Units.formatBytes(total),
                        verify.path("differingBlocks").asLong())
                    : "waiting for " + volume + " to stream (replication " + v.path("replication").asText() + ")";
            });
        }

        private int report(final JsonNode verify, final String state)
        {
            final long differing = verify.path("differingBlocks").asLong();
            final long repaired = verify.path("repairedBlocks").asLong();
            System.out.println(volume + ": verify " + state + ": " + differing + " block(s) differ, " + repaired
                + " sent again, " + verify.path("skippedBlocks").asLong() + " skipped while being written");
            int shown = 0;
            for (final JsonNode offset : verify.path("differingOffsets"))
            {
                if (shown++ == 20)
                {
                    System.out.println("  ...");
                    break;
                }
                System.out.println("  differs at offset " + offset.asLong());
            }
            if (!"done".equals(state))
            {
                return 1;
            }
            return differing == repaired ? 0 : 1;
        }
    }

    /**
     * Polls the volume's status every 500 ms until {@code done} gives an exit code, printing each new
     * {@code progress} line to stderr; 1 after {@code timeoutSeconds} (the work goes on in the daemon).
     */
    static int watch(final String address, final String volume, final long timeoutSeconds, final String what,
        final java.util.function.Function<JsonNode, Integer> done, final java.util.function.Function<JsonNode, String> progress)
        throws InterruptedException
    {
        final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutSeconds);
        String lastLine = "";
        while (System.nanoTime() < deadline)
        {
            final JsonNode v = volumeStatus(address, volume);
            if (v == null)
            {
                return 1;
            }
            final Integer code = done.apply(v);
            if (code != null)
            {
                return code;
            }
            final String line = progress.apply(v);
            if (!line.equals(lastLine))
            {
                System.err.println(line);
                lastLine = line;
            }
            Thread.sleep(500);
        }
        System.err.println("doppel: " + what + " of " + volume + " did not finish within " + timeoutSeconds
            + " s; it goes on in the daemon (see doppel status --json)");
        return 1;
    }

    /** POSTs the verb; prints the daemon's refusal or why it could not be reached and returns null then. */
    static JsonNode post(final String address, final String volume, final String verb, final String query)
        throws InterruptedException
    {
        final URI uri = URI.create("http://" + address + "/volumes/" + URLEncoder.encode(volume, StandardCharsets.UTF_8)
            + "/" + verb + (query.isEmpty() ? "" : "?" + query));
        try
        {
            final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build();
            final HttpResponse<String> r = client.send(HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(30))
                .header(io.doppel.admin.AdminServer.VERB_HEADER, "1")
                .POST(HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.ofString());
            final JsonNode body = JSON.readTree(r.body());
            if (r.statusCode() != 200)
            {
                System.err.println("doppel: " + verb + " " + volume + " refused by the daemon at " + address + ": "
                    + body.path("error").asText(r.body().trim()));
                return null;
            }
            return body;
        }
        catch (final IOException e)
        {
            System.err.println("doppel: cannot reach the admin endpoint at " + uri + ": " + StatusCommand.describe(e)
                + "; is the daemon running? (choose another with --admin HOST:PORT)");
            return null;
        }
    }

    /** The named volume's /status entry, or null after printing why not. */
    static JsonNode volumeStatus(final String address, final String volume) throws InterruptedException
    {
        try
        {
            final JsonNode status = JSON.readTree(StatusCommand.fetch(URI.create("http://" + address + "/status")));
            for (final JsonNode v : status.path("volumes"))
            {
                if (volume.equals(v.path("name").asText()))
                {
                    return v;
                }
            }
            System.err.println("doppel: no volume " + volume + " in the status of " + address);
        }
        catch (final IOException e)
        {
            System.err.println("doppel: lost the admin endpoint at " + address + ": " + StatusCommand.describe(e));
        }
        return null;
    }
}
