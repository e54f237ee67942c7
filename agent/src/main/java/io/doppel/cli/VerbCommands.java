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
 * {@code POST /volumes/VOL/VERB} with the admin token ({@link AdminOptions#token()}). Exit codes: 0 done,
 * 1 the daemon refused or could not be reached, or verify found differences it did not repair, 2 bad usage,
 * 4 not allowed: the admin token could not be read, or the daemon did not accept it.
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
            final String token;
            try
            {
                token = where.token();
            }
            catch (final AdminOptions.Failure e)
            {
                return e.code;
            }
            if (!before(address))
            {
                return 1;
            }
            final JsonNode answer;
            try
            {
                answer = post(address, volume, verb(), query(), token);
            }
            catch (final AdminOptions.Failure e)
            {
                return e.code;
            }
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

        @Option(names = "--progress-interval", defaultValue = "5", paramLabel = "SECONDS",
            description = "when the output is not a terminal: seconds between progress lines (default: ${DEFAULT-VALUE});"
                + " a terminal gets a bar redrawn in place")
        double progressInterval;

        /** The counter in the volume's status that tells this request's run from earlier ones, before it. */
        long counterBefore;

        /** That counter in a status document (e.g. links made, verifies started). */
        abstract long counter(JsonNode volumeStatus);

        /** "resync", "verify": for messages. */
        abstract String what();

        /** Whether the status shows this request's run over. */
        abstract boolean finished(JsonNode v);

        /** Prints the outcome of a finished run; the exit code. */
        abstract int report(JsonNode v);

        /** Shows where the run is: {@link Progress#waiting} or {@link Progress#update}. */
        abstract void show(JsonNode v, Progress progress);

        @Override
        boolean before(final String address) throws Exception
        {
            final JsonNode v = volumeStatus(address, volume, null);
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

        @Override
        int afterwards(final String address) throws Exception
        {
            if (noWait)
            {
                return 0;
            }
            final Progress progress = Progress.onStderr(progressInterval);
            return follow(() -> volumeStatus(address, volume, progress), progress, 500);
        }

        /**
         * Polls the volume's status every {@code pollMillis} until the run is over, showing its progress;
         * 1 when the status cannot be had, or after --timeout (the work goes on in the daemon).
         */
        int follow(final StatusSource status, final Progress progress, final long pollMillis) throws InterruptedException
        {
            final long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutSeconds);
            while (System.nanoTime() < deadline)
            {
                final JsonNode v = status.fetch();
                if (v == null)
                {
                    return 1;
                }
                if (finished(v))
                {
                    progress.finish();
                    return report(v);
                }
                show(v, progress);
                Thread.sleep(pollMillis);
            }
            progress.finish();
            System.err.println("doppel: " + what() + " of " + volume + " did not finish within " + timeoutSeconds
                + " s; it goes on in the daemon (see doppel status --json)");
            return 1;
        }
    }

    /** Where {@link WaitingVerb#follow} gets the volume's status from; null after printing why there is none. */
    interface StatusSource
    {
        JsonNode fetch() throws InterruptedException;
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
        String what()
        {
            return "resync";
        }

        @Override
        boolean finished(final JsonNode v)
        {
            return ours(v) && "streaming".equals(v.path("replication").asText())
                && "up-to-date".equals(v.path("disk").asText()) && v.path("dirtyBytes").asLong() == 0;
        }

        @Override
        int report(final JsonNode v)
        {
            System.out.println(volume + ": resync done: " + Units.formatBytes(v.path("syncBytesSent").asLong())
                + " sent; the standby is up to date");
            return 0;
        }

        @Override
        void show(final JsonNode v, final Progress progress)
        {
            final long total = v.path("syncTotalBytes").asLong();
            final String replication = v.path("replication").asText();
            if (!ours(v) || total <= 0)
            {
                progress.waiting("waiting for " + volume + " to reconnect (replication " + replication + ")");
                return;
            }
            final long done = v.path("syncedBytes").asLong();
            progress.update(String.format(Locale.ROOT, "resync %s: %s, %.0f%% of %s compared (%s)", volume, replication,
                100.0 * done / total, Units.formatBytes(total), Units.formatBytes(done)),
                "resync " + volume, "syncing".equals(replication) ? "" : replication, done, total);
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
        String what()
        {
            return "verify";
        }

        @Override
        boolean finished(final JsonNode v)
        {
            return ours(v) && !"running".equals(v.path("verify").path("state").asText());
        }

        @Override
        int report(final JsonNode v)
        {
            return report(v.path("verify"), v.path("verify").path("state").asText());
        }

        @Override
        void show(final JsonNode v, final Progress progress)
        {
            final JsonNode verify = v.path("verify");
            final long total = verify.path("totalBytes").asLong();
            if (!ours(v) || total <= 0)
            {
                progress.waiting("waiting for " + volume + " to stream (replication " + v.path("replication").asText() + ")");
                return;
            }
            final long done = verify.path("verifiedBytes").asLong();
            final long differing = verify.path("differingBlocks").asLong();
            progress.update(String.format(Locale.ROOT, "verifying %s: %.0f%% of %s (%s), %d differing so far", volume,
                100.0 * done / total, Units.formatBytes(total), Units.formatBytes(done), differing),
                "verify " + volume, differing == 0 ? "" : differing + " differ", done, total);
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
     * POSTs the verb with {@code token}; prints the daemon's refusal or why it could not be reached and returns
     * null then; a refused token is a {@link AdminOptions.Failure} (exit {@value DoppelCli#EXIT_NOT_ALLOWED}).
     */
    static JsonNode post(final String address, final String volume, final String verb, final String query,
        final String token) throws InterruptedException, AdminOptions.Failure
    {
        final URI uri = URI.create("http://" + address + "/volumes/" + URLEncoder.encode(volume, StandardCharsets.UTF_8)
            + "/" + verb + (query.isEmpty() ? "" : "?" + query));
        try
        {
            final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build();
            final HttpResponse<String> r = client.send(HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(30))
                .header(io.doppel.admin.AdminServer.VERB_HEADER, "1").header("Authorization", "Bearer " + token)
                .POST(HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.ofString());
            final JsonNode body = JSON.readTree(r.body());
            if (r.statusCode() == 401 || r.statusCode() == 403)
            {
                final String message = verb + " " + volume + " not allowed by the daemon at " + address + ": "
                    + body.path("error").asText(r.body().trim());
                System.err.println("doppel: " + message);
                throw new AdminOptions.Failure(DoppelCli.EXIT_NOT_ALLOWED, message);
            }
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

    /** The named volume's /status entry, or null after printing why not (clearing {@code progress}'s bar first). */
    static JsonNode volumeStatus(final String address, final String volume, final Progress progress)
        throws InterruptedException
    {
        final Runnable clear = progress == null ? () -> { } : progress::finish;
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
            clear.run();
            System.err.println("doppel: no volume " + volume + " in the status of " + address);
        }
        catch (final IOException e)
        {
            clear.run();
            System.err.println("doppel: lost the admin endpoint at " + address + ": " + StatusCommand.describe(e));
        }
        return null;
    }
}
