package io.doppel.admin;

import com.sun.net.httpserver.HttpExchange;
import io.doppel.log.Log;

import java.util.EnumMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/**
 * Decides whether an admin request may change state: it must carry {@code X-Doppel-Verb: 1} (so no web
 * page can forge it) and {@code Authorization: Bearer TOKEN} with the node's {@link AdminToken} (so no
 * local user who cannot read the token file can send it). Every refusal is counted by reason
 * ({@code doppel_admin_refused_total{reason}}) and logged with the remote address, the verb and the
 * volume, at most one line per second per reason (a flood of refusals cannot flood the journal; the
 * next line says how many were not logged).
 */
public final class AdminGuard
{
    /** Why a request was refused; {@link #label()} is the metric's {@code reason}. */
    public enum Reason
    {
        NO_VERB_HEADER(403), MISSING_TOKEN(401), WRONG_TOKEN(403);

        private final int status;

        Reason(final int status)
        {
            this.status = status;
        }

        public String label()
        {
            return name().toLowerCase(Locale.ROOT).replace('_', '-');
        }

        public int status()
        {
            return status;
        }
    }

    /** A refused request: the HTTP status and the message for the client. */
    public record Refusal(Reason reason, String message)
    {
    }

    private final String component;
    private final AdminToken token;
    private final Map<Reason, LongAdder> refused = new EnumMap<>(Reason.class);
    private final Map<Reason, long[]> logState = new EnumMap<>(Reason.class); // {last log nanos, unlogged}

    public AdminGuard(final String nodeName, final AdminToken token)
    {
        this.component = nodeName + "/admin";
        this.token = token;
        for (final Reason r : Reason.values())
        {
            refused.put(r, new LongAdder());
            logState.put(r, new long[] {System.nanoTime() - 2_000_000_000L, 0});
        }
    }

    /**
     * Null when {@code exchange} may run {@code verb} (on {@code volume}, null for node-wide verbs such as
     * reload); otherwise the refusal, already counted and logged.
     */
    public Refusal check(final HttpExchange exchange, final String verb, final String volume)
    {
        final String what = verb + (volume == null ? "" : " " + volume);
        if (!"1".equals(exchange.getRequestHeaders().getFirst(AdminServer.VERB_HEADER)))
        {
            // A browser cannot send a custom header cross-site without a preflight: no page can demote us.
            return refuse(Reason.NO_VERB_HEADER, exchange, what, "a verb needs the header " + AdminServer.VERB_HEADER
                + ": 1 (the doppel CLI sends it)");
        }
        final String authorization = exchange.getRequestHeaders().getFirst("Authorization");
        final String presented = bearer(authorization);
        if (presented == null)
        {
            return refuse(Reason.MISSING_TOKEN, exchange, what, what + " changes state and needs the admin token:"
                + " send Authorization: Bearer TOKEN, TOKEN being the contents of " + token.file()
                + " ([node].admin-token-file, readable only by root and the daemon's user). The doppel CLI reads it"
                + " itself when run as one of them (or give --token-file FILE or DOPPEL_ADMIN_TOKEN)");
        }
        if (!token.matches(presented))
        {
            return refuse(Reason.WRONG_TOKEN, exchange, what, what + " refused: the admin token does not match the"
                + " one in " + token.file() + " ([node].admin-token-file) of this daemon");
        }
        return null;
    }

    /** The token after {@code Bearer }, or null when the header is missing or another scheme. */
    private static String bearer(final String authorization)
    {
        if (authorization == null)
        {
            return null;
        }
        final String h = authorization.strip();
        if (h.length() <= 7 || !h.regionMatches(true, 0, "Bearer ", 0, 7))
        {
            return null;
        }
        return h.substring(7).strip();
    }

    private Refusal refuse(final Reason reason, final HttpExchange exchange, final String what, final String message)
    {
        refused.get(reason).increment();
        final String from = exchange.getRemoteAddress() == null ? "?"
            : exchange.getRemoteAddress().getAddress().getHostAddress() + ":" + exchange.getRemoteAddress().getPort();
        final long now = System.nanoTime();
        final long[] state = logState.get(reason);
        synchronized (state)
        {
            if (now - state[0] >= 1_000_000_000L)
            {
                Log.warn(component, "refused " + what + " from " + from + ": " + reason.label()
                    + (state[1] == 0 ? "" : " (" + state[1] + " more " + reason.label() + " refusal(s) not logged)"));
                state[0] = now;
                state[1] = 0;
            }
            else
            {
                state[1]++;
            }
        }
        return new Refusal(reason, message);
    }

    /** Requests refused for {@code reason} since start. */
    public long refused(final Reason reason)
    {
        return refused.get(reason).sum();
    }

    public AdminToken token()
    {
        return token;
    }
}
