package io.doppel.admin;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.doppel.log.Log;
import io.doppel.net.Transport;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Supplier;

/**
 * The admin endpoint (control plane, plain JDK HTTP server on one thread): {@code GET /status} returns
 * the node's state as JSON; {@code POST /volumes/NAME/VERB} runs an operator verb (pause, resume, resync,
 * verify, promote, demote) and answers at once with JSON, long verbs reporting progress in /status;
 * {@code POST /reload} re-reads the config file; {@code GET /metrics} is the Prometheus text.
 * Loopback by default. The GETs are open (read-only); every POST changes state or starts work and must
 * pass the {@link AdminGuard}: the admin token in {@code Authorization: Bearer}, read from a file only
 * root and the daemon's user can read, so a local unprivileged user cannot promote or pause a volume.
 */
public final class AdminServer implements AutoCloseable
{
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Header every verb request must carry (so a web page cannot forge one). */
    public static final String VERB_HEADER = "X-Doppel-Verb";

    private final HttpServer server;
    private final ExecutorService executor;

    private AdminServer(final HttpServer server, final ExecutorService executor)
    {
        this.server = server;
        this.executor = executor;
    }

    /** Runs an operator verb on a volume; throws {@link VerbException} for a refusal the operator must see. */
    /** Verbs that only read, answered to GET without the admin token. */
    public static final java.util.Set<String> READ_VERBS = java.util.Set.of("conflicts");

    public interface Verbs
    {
        Map<String, Object> run(String volume, String verb, Map<String, String> options) throws VerbException;
    }

    /** A refused verb: HTTP status and a message naming what was wrong and what is accepted. */
    public static final class VerbException extends Exception
    {
        private static final long serialVersionUID = 1L;
        private final int status;

        public VerbException(final int status, final String message)
        {
            super(message);
            this.status = status;
        }

        public int status()
        {
            return status;
        }
    }

    /**
     * Starts the endpoint: {@code status} and {@code metrics} answer the open GETs; {@code verbs} and
     * {@code reload} (a map whose {@code accepted} is false when the reload was refused: HTTP 409) run only for
     * requests {@code guard} lets through.
     */
    public static AdminServer start(final String nodeName, final InetSocketAddress address,
        final Supplier<Map<String, Object>> status, final Verbs verbs, final Supplier<String> metrics,
        final Supplier<Map<String, Object>> reload, final AdminGuard guard) throws IOException
    {
        final HttpServer server;
        try
        {
            server = HttpServer.create(Transport.resolve(address), 16);
        }
        catch (final IOException e)
        {
            throw new IOException("cannot listen for admin requests on " + address.getHostString() + ":"
                + address.getPort() + " ([node].admin): " + e.getMessage(), e);
        }
        final ExecutorService executor = Executors.newSingleThreadExecutor(r ->
        {
            final Thread t = new Thread(r, "doppel-admin");
            t.setDaemon(true);
            return t;
        });
        server.setExecutor(executor);
        server.createContext("/status", exchange -> respond(exchange, "application/json", () -> JSON.writerWithDefaultPrettyPrinter()
            .writeValueAsString(status.get()) + "\n"));
        server.createContext("/volumes/", exchange -> verb(exchange, verbs, nodeName, guard));
        server.createContext("/reload", exchange -> reload(exchange, reload, guard));
        server.createContext("/metrics", exchange -> respond(exchange, "text/plain; version=0.0.4", metrics::get));
        server.createContext("/", exchange -> send(exchange, 404, "text/plain",
            "not found: " + exchange.getRequestURI().getPath() + " (try /status)\n"));
        server.start();
        Log.info(nodeName + "/admin", "admin endpoint on http://" + server.getAddress().getHostString() + ":"
            + server.getAddress().getPort() + "/status");
        return new AdminServer(server, executor);
    }

    /** The bound address. */
    public InetSocketAddress address()
    {
        return server.getAddress();
    }

    private interface Body
    {
        String get() throws IOException;
    }

    /** Answers a GET with {@code body} as {@code type}; a failure to build it is a 500 with the error as JSON. */
    private static void respond(final HttpExchange exchange, final String type, final Body body) throws IOException
    {
        if (!"GET".equals(exchange.getRequestMethod()))
        {
            send(exchange, 405, "text/plain", exchange.getRequestMethod() + " not allowed: use GET\n");
            return;
        }
        final String text;
        try
        {
            text = body.get();
        }
        catch (final RuntimeException e)
        {
            send(exchange, 500, "application/json", error(String.valueOf(e)));
            return;
        }
        send(exchange, 200, type, text);
    }

    private static void verb(final HttpExchange exchange, final Verbs verbs, final String nodeName,
        final AdminGuard guard) throws IOException
    {
        final String[] parts = exchange.getRequestURI().getPath().split("/");
        if (parts.length != 4 || parts[2].isEmpty() || parts[3].isEmpty())
        {
            send(exchange, 404, "application/json", error("expected POST /volumes/NAME/VERB, got "
                + exchange.getRequestURI().getPath()));
            return;
        }
        // Reads (GET /volumes/NAME/conflicts) change nothing: open like /status, no token.
        final boolean read = READ_VERBS.contains(parts[3]);
        if (read && !"GET".equals(exchange.getRequestMethod()))
        {
            send(exchange, 405, "application/json", error(exchange.getRequestMethod() + " not allowed: use GET"));
            return;
        }
        if (!read && !isVerbRequest(exchange, guard, parts[3], parts[2]))
        {
            return;
        }
        final Map<String, String> options = new java.util.LinkedHashMap<>();
        final String query = exchange.getRequestURI().getRawQuery();
        if (query != null && !query.isEmpty())
        {
            for (final String pair : query.split("&"))
            {
                final int eq = pair.indexOf('=');
                options.put(java.net.URLDecoder.decode(eq < 0 ? pair : pair.substring(0, eq), StandardCharsets.UTF_8),
                    eq < 0 ? "true" : java.net.URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8));
            }
        }
        try
        {
            final Map<String, Object> result = verbs.run(parts[2], parts[3], options);
            if (read)
            {
                send(exchange, 200, "application/json", JSON.writerWithDefaultPrettyPrinter().writeValueAsString(result)
                    + "\n");
                return;
            }
            Log.info(nodeName + "/admin", parts[3] + " " + parts[2] + (options.isEmpty() ? "" : " " + options) + ": "
                + result.getOrDefault("message", "ok"));
            send(exchange, 200, "application/json", JSON.writerWithDefaultPrettyPrinter().writeValueAsString(result) + "\n");
        }
        catch (final VerbException e)
        {
            Log.warn(nodeName + "/admin", parts[3] + " " + parts[2] + " refused: " + e.getMessage());
            send(exchange, e.status(), "application/json", error(e.getMessage()));
        }
        catch (final RuntimeException e)
        {
            Log.error(nodeName + "/admin", parts[3] + " " + parts[2] + " failed: " + e);
            send(exchange, 500, "application/json", error(String.valueOf(e)));
        }
    }

    /**
     * A POST that {@code guard} lets through (it carries {@link #VERB_HEADER} and the admin token); otherwise
     * answers 405, 401 or 403 with a JSON error and returns false.
     */
    private static boolean isVerbRequest(final HttpExchange exchange, final AdminGuard guard, final String verb,
        final String volume) throws IOException
    {
        if (!"POST".equals(exchange.getRequestMethod()))
        {
            send(exchange, 405, "application/json", error(exchange.getRequestMethod() + " not allowed: use POST"));
            return false;
        }
        final AdminGuard.Refusal refusal = guard.check(exchange, verb, volume);
        if (refusal != null)
        {
            if (refusal.reason() == AdminGuard.Reason.MISSING_TOKEN)
            {
                exchange.getResponseHeaders().set("WWW-Authenticate", "Bearer realm=\"doppel admin\"");
            }
            send(exchange, refusal.reason().status(), "application/json", error(refusal.message()));
            return false;
        }
        return true;
    }

    /** {@code POST /reload}: 200 when the reload applied, 409 when it was refused; the node logs either. */
    private static void reload(final HttpExchange exchange, final Supplier<Map<String, Object>> reload,
        final AdminGuard guard) throws IOException
    {
        if (!isVerbRequest(exchange, guard, "reload", null))
        {
            return;
        }
        final Map<String, Object> result;
        try
        {
            result = reload.get();
        }
        catch (final RuntimeException e)
        {
            send(exchange, 500, "application/json", error(String.valueOf(e)));
            return;
        }
        send(exchange, Boolean.TRUE.equals(result.get("accepted")) ? 200 : 409, "application/json",
            JSON.writerWithDefaultPrettyPrinter().writeValueAsString(result) + "\n");
    }

    private static String error(final String message) throws IOException
    {
        return "{\"error\": " + JSON.writeValueAsString(message) + "}\n";
    }

    private static void send(final HttpExchange exchange, final int code, final String type, final String text)
        throws IOException
    {
        final byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", type + "; charset=utf-8");
        exchange.sendResponseHeaders(code, bytes.length);
        try (OutputStream out = exchange.getResponseBody())
        {
            out.write(bytes);
        }
    }

    @Override
    public void close()
    {
        server.stop(0);
        executor.shutdownNow();
    }
}
