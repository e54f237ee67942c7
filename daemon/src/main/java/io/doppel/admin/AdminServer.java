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
 * the node's state as JSON. Loopback by default; nothing here can change state yet.
 */
public final class AdminServer implements AutoCloseable
{
    private static final ObjectMapper JSON = new ObjectMapper();

    private final HttpServer server;
    private final ExecutorService executor;

    private AdminServer(final HttpServer server, final ExecutorService executor)
    {
        this.server = server;
        this.executor = executor;
    }

    public static AdminServer start(final String nodeName, final InetSocketAddress address,
        final Supplier<Map<String, Object>> status) throws IOException
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
        server.createContext("/status", exchange -> respond(exchange, () -> JSON.writerWithDefaultPrettyPrinter()
            .writeValueAsString(status.get()) + "\n"));
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

    private static void respond(final HttpExchange exchange, final Body body) throws IOException
    {
        if (!"GET".equals(exchange.getRequestMethod()))
        {
            send(exchange, 405, "text/plain", exchange.getRequestMethod() + " not allowed: use GET\n");
            return;
        }
        String text;
        int code = 200;
        try
        {
            text = body.get();
        }
        catch (final RuntimeException e)
        {
            code = 500;
            text = "{\"error\": " + JSON.writeValueAsString(String.valueOf(e)) + "}\n";
        }
        send(exchange, code, "application/json", text);
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
