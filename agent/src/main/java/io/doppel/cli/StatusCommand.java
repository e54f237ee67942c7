package io.doppel.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.doppel.config.Units;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code doppel status}: what a running daemon is doing, as a table or as the raw /status JSON. */
@Command(name = "status", mixinStandardHelpOptions = true,
    description = "Show the state of a running daemon's volumes (from its admin endpoint).")
final class StatusCommand implements Callable<Integer>
{
    @Option(names = "--json", description = "print the /status JSON as the daemon returns it")
    boolean json;

    @Option(names = "--watch", description = "print the table again every --interval seconds, with throughput and ETA")
    boolean watch;

    @Option(names = "--interval", defaultValue = "2", paramLabel = "SECONDS",
        description = "seconds between tables with --watch (default: ${DEFAULT-VALUE})")
    double intervalSeconds;

    @Option(names = "--count", defaultValue = "0", paramLabel = "N",
        description = "with --watch: stop after N tables (default: until interrupted)")
    int count;

    @Mixin
    AdminOptions where = new AdminOptions();

    @Override
    public Integer call() throws Exception
    {
        final String address = where.address();
        if (address == null)
        {
            return 2;
        }
        final URI uri = URI.create("http://" + address + "/status");
        JsonNode previous = null;
        long previousNanos = 0;
        for (int shown = 0; ; shown++)
        {
            final String body;
            try
            {
                body = fetch(uri);
            }
            catch (final IOException e)
            {
                System.err.println("doppel: cannot reach the admin endpoint at " + uri + ": " + describe(e)
                    + "; is the daemon running? (choose another with --admin HOST:PORT)");
                return 1;
            }
            if (json && !watch)
            {
                System.out.print(body.endsWith("\n") ? body : body + "\n");
                return 0;
            }
            final JsonNode now = new ObjectMapper().readTree(body);
            final long nowNanos = System.nanoTime();
            if (watch && System.console() != null)
            {
                System.out.print("\033[H\033[2J"); // a terminal: redraw in place
            }
            printTable(now, System.out);
            if (!watch)
            {
                return 0;
            }
            printRates(previous, now, (nowNanos - previousNanos) / 1e9, System.out);
            System.out.flush();
            if (count > 0 && shown + 1 >= count)
            {
                return 0;
            }
            previous = now;
            previousNanos = nowNanos;
            Thread.sleep((long)(intervalSeconds * 1000));
        }
    }

    /** Per volume: throughput since the last table and, while syncing, the time left at that rate. */
    static void printRates(final JsonNode before, final JsonNode now, final double seconds, final PrintStream out)
    {
        if (before == null || seconds <= 0)
        {
            return;
        }
        for (final JsonNode v : now.path("volumes"))
        {
            JsonNode b = null;
            for (final JsonNode x : before.path("volumes"))
            {
                if (x.path("name").asText().equals(v.path("name").asText()))
                {
                    b = x;
                }
            }
            if (b == null)
            {
                continue;
            }
            final double sent = (v.path("bytesSent").asLong() - b.path("bytesSent").asLong()) / seconds;
            final double received = (v.path("bytesReceived").asLong() - b.path("bytesReceived").asLong()) / seconds;
            final double synced = (v.path("syncedBytes").asLong() - b.path("syncedBytes").asLong()) / seconds;
            final long left = v.path("syncTotalBytes").asLong() - v.path("syncedBytes").asLong();
            String eta = "-";
            if ("syncing".equals(v.path("replication").asText()) && left > 0 && synced > 0)
            {
                eta = formatSeconds(left / synced);
            }
            out.printf(Locale.ROOT, "  %s: sent %s/s, received %s/s, sync ETA %s%n", v.path("name").asText(),
                Units.formatBytes((long)Math.max(0, sent)), Units.formatBytes((long)Math.max(0, received)), eta);
        }
    }

    static String formatSeconds(final double s)
    {
        final long t = (long)Math.ceil(s);
        return t >= 3600 ? String.format(Locale.ROOT, "%dh%02dm", t / 3600, t / 60 % 60)
            : t >= 60 ? String.format(Locale.ROOT, "%dm%02ds", t / 60, t % 60) : t + "s";
    }

    static String fetch(final URI uri) throws IOException, InterruptedException
    {
        final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build();
        final HttpResponse<String> response = client.send(HttpRequest.newBuilder(uri)
            .timeout(Duration.ofSeconds(5)).GET().build(), HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() != 200)
        {
            throw new IOException("HTTP " + response.statusCode() + ": " + response.body().trim());
        }
        return response.body();
    }

    static String describe(final IOException e)
    {
        final String m = e.getMessage();
        return m == null || m.isEmpty() ? e.getClass().getSimpleName().replace("Exception", "").toLowerCase(Locale.ROOT)
            : m;
    }

    static void printTable(final JsonNode status, final PrintStream out)
    {
        out.println("node " + status.path("node").asText());
        int nameWidth = 12; // members of a volume group have long names (<group>.<file>)
        for (final JsonNode v : status.path("volumes"))
        {
            nameWidth = Math.max(nameWidth, v.path("name").asText().length());
        }
        final String format = "%-" + nameWidth + "s %-8s %-14s %-11s %-12s %10s %10s %10s %10s %10s %6s%n";
        out.printf(format, "VOLUME", "ROLE", "PEER", "REPLICATION", "DISK", "SIZE", "DIRTY", "LAG", "SENT", "RECEIVED",
            "SYNC");
        for (final JsonNode v : status.path("volumes"))
        {
            final JsonNode peer = v.path("peer");
            final long total = v.path("syncTotalBytes").asLong();
            final String sync = total == 0 ? "-" : String.format(Locale.ROOT, "%.0f%%",
                100.0 * v.path("syncedBytes").asLong() / total);
            out.printf(format, v.path("name").asText(), v.path("role").asText(),
                peer.path("name").asText() + (peer.path("connected").asBoolean() ? " (up)" : " (down)"),
                v.path("replication").asText(), v.path("disk").asText(),
                Units.formatBytes(v.path("size").asLong()), Units.formatBytes(v.path("dirtyBytes").asLong()),
                Units.formatBytes(v.path("dirtyBytes").asLong() + v.path("inFlightBytes").asLong()
                    + v.path("logBytes").asLong()),
                Units.formatBytes(v.path("bytesSent").asLong()), Units.formatBytes(v.path("bytesReceived").asLong()),
                sync);
            final String error = v.path("lastError").asText();
            if (!error.isEmpty())
            {
                out.println("  last error: " + error);
            }
        }
        for (final JsonNode g : status.path("groups"))
        {
            out.println("group " + g.path("name").asText() + " (" + g.path("role").asText() + ", "
                + g.path("path").asText() + "): " + g.path("members").size() + " member(s)"
                + (g.path("pending").isEmpty() ? "" : ", " + g.path("pending").size() + " file(s) settling"));
            g.path("missing").fields().forEachRemaining(e -> out.println("  missing: " + e.getKey() + " ("
                + e.getValue().asText() + "; its standby copy is kept)"));
            g.path("skipped").fields().forEachRemaining(e -> out.println("  skipped: " + e.getKey() + ": "
                + e.getValue().asText()));
            if (!g.path("error").asText().isEmpty())
            {
                out.println("  error: " + g.path("error").asText());
            }
        }
    }
}
