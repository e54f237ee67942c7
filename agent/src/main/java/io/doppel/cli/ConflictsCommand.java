package io.doppel.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code doppel conflicts VOL}: the conflicts a two-way volume resolved on this node (both nodes wrote a
 * block concurrently; the later write won), newest first, from {@code GET /volumes/VOL/conflicts}. The losing
 * bytes are in the conflict log file the output names. Exit codes: 0 listed (even none), 1 the daemon
 * refused (not a two-way volume, no such volume) or could not be reached, 2 bad usage.
 */
@Command(name = "conflicts", mixinStandardHelpOptions = true,
    description = "List the write conflicts a two-way volume resolved on this node (newest first).")
final class ConflictsCommand implements Callable<Integer>
{
    @Parameters(index = "0", paramLabel = "VOL", description = "the two-way volume's name")
    String volume;

    @Option(names = "--json", description = "print the daemon's JSON answer as it is")
    boolean json;

    @Option(names = "--limit", defaultValue = "1000", paramLabel = "N",
        description = "list at most N conflicts, newest first (default: ${DEFAULT-VALUE})")
    int limit;

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
        if (limit < 0)
        {
            System.err.println("doppel: --limit " + limit + ": expected 0 or more");
            return 2;
        }
        final URI uri = URI.create("http://" + address + "/volumes/" + URLEncoder.encode(volume, StandardCharsets.UTF_8)
            + "/conflicts?limit=" + limit);
        final String body;
        try
        {
            body = StatusCommand.fetch(uri);
        }
        catch (final IOException e)
        {
            final String m = StatusCommand.describe(e);
            if (m.startsWith("HTTP "))
            {
                String why = m;
                try
                {
                    why = new ObjectMapper().readTree(m.substring(m.indexOf(':') + 1)).path("error").asText(m);
                }
                catch (final IOException notJson)
                {
                    // keep the raw text
                }
                System.err.println("doppel: conflicts " + volume + ": " + why);
            }
            else
            {
                System.err.println("doppel: cannot reach the admin endpoint at " + uri + ": " + m
                    + "; is the daemon running? (choose another with --admin HOST:PORT)");
            }
            return 1;
        }
        if (json)
        {
            System.out.print(body.endsWith("\n") ? body : body + "\n");
            return 0;
        }
        final JsonNode answer = new ObjectMapper().readTree(body);
        System.out.println("volume " + answer.path("volume").asText() + " on node " + answer.path("node").asText() + ": "
            + answer.path("count").asLong() + " conflict(s) since start (" + answer.path("wonHere").asLong()
            + " won by this node, " + answer.path("wonByPeer").asLong() + " by the peer); " + answer.path("logged").asLong()
            + " in " + answer.path("log").asText());
        if (answer.path("conflicts").size() == 0)
        {
            return 0;
        }
        final String format = "%14s %8s  %-10s %-36s %-12s  %-10s %-36s %-12s%n";
        System.out.printf(format, "OFFSET", "LENGTH", "WINNER", "WINNER STAMP", "VECTOR", "LOSER", "LOSER STAMP", "VECTOR");
        for (final JsonNode c : answer.path("conflicts"))
        {
            final JsonNode w = c.path("winner");
            final JsonNode l = c.path("loser");
            System.out.printf(format, c.path("offset").asLong(), c.path("length").asLong(), w.path("node").asText(),
                w.path("stamp").asText(), vector(w.path("vector")), l.path("node").asText(), l.path("stamp").asText(),
                vector(l.path("vector")));
        }
        return 0;
    }

    private static String vector(final JsonNode v)
    {
        final StringBuilder b = new StringBuilder("[");
        for (final Iterator<Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); )
        {
            final Map.Entry<String, JsonNode> e = it.next();
            b.append(e.getValue().asLong()).append(it.hasNext() ? "," : "");
        }
        return b.append(']').toString();
    }
}
