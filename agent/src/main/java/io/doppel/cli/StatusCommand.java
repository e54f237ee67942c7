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
        if (json)
        {
            System.out.print(body.endsWith("\n") ? body : body + "\n");
            return 0;
        }
        printTable(new ObjectMapper().readTree(body), System.out);
        return 0;
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
        final String format = "%-12s %-8s %-14s %-11s %-12s %10s %10s %10s %10s %6s%n";
        out.printf(format, "VOLUME", "ROLE", "PEER", "REPLICATION", "DISK", "SIZE", "DIRTY", "SENT", "RECEIVED",
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
                Units.formatBytes(v.path("bytesSent").asLong()), Units.formatBytes(v.path("bytesReceived").asLong()),
                sync);
            final String error = v.path("lastError").asText();
            if (!error.isEmpty())
            {
                out.println("  last error: " + error);
            }
        }
    }
}
