package io.doppel.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import io.doppel.admin.AdminServer;
import io.doppel.config.ConfigException;
import io.doppel.config.ConfigLoader;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.concurrent.Callable;

/**
 * {@code doppel reload}: asks a running daemon to re-read its config file ({@code POST /reload}) and
 * waits for the answer, so {@code systemctl reload} fails when the reload was refused. The daemon reads
 * the file it was started with; {@code --config} here only says where its admin endpoint is.
 */
@Command(name = "reload", mixinStandardHelpOptions = true,
    description = {"Make a running daemon re-read its config file and apply what can change live (log level,"
        + " compression, ack, after-split-brain, new peers and volumes).",
        "All or nothing: when a change cannot apply live (a path, a block size, a listen address, a removed"
            + " volume) nothing changes and the daemon goes on with its old config.",
        "The same as kill -HUP on the daemon, but with the answer."},
    exitCodeListHeading = "%nExit codes:%n",
    exitCodeList = {"0:reloaded (each applied change is printed)", "1:refused (each reason is printed), or the"
        + " daemon could not be reached", "2:bad usage", "4:not allowed: the admin token could not be read (run as root"
        + " or the daemon's user) or the daemon refused it"})
final class ReloadCommand implements Callable<Integer>
{
    private static final ObjectMapper JSON = new ObjectMapper();

    @Mixin
    AdminOptions where = new AdminOptions();

    /**
     * Where to send the reload. The file given with --config is the one being reloaded and may not pass
     * validation: then only its [node].admin is read, and the daemon itself refuses the reload with the
     * loader's message (logged, and in its systemd status), rather than this command refusing to ask.
     */
    private String adminAddress()
    {
        if (where.admin != null || where.config == null)
        {
            return where.address();
        }
        try
        {
            final var a = ConfigLoader.load(where.config).node().admin();
            return a.getHostString() + ":" + a.getPort();
        }
        catch (final ConfigException e)
        {
            try
            {
                final JsonNode admin = new TomlMapper().readTree(where.config.toFile()).path("node").path("admin");
                return admin.isTextual() ? admin.asText() : AdminOptions.DEFAULT_ADMIN;
            }
            catch (final IOException unreadable)
            {
                System.err.println("doppel: " + e.getMessage());
                return null;
            }
        }
    }

    @Override
    public Integer call() throws Exception
    {
        final String address = adminAddress();
        if (address == null)
        {
            System.err.println("doppel: the daemon was not asked to reload; it goes on with the config it has");
            return 1;
        }
        final String token;
        try
        {
            token = where.token();
        }
        catch (final AdminOptions.Failure e)
        {
            System.err.println("doppel: the daemon was not asked to reload; it goes on with the config it has");
            return e.code;
        }
        final URI uri = URI.create("http://" + address + "/reload");
        final HttpResponse<String> r;
        try
        {
            final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(3)).build();
            r = client.send(HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(120))
                .header(AdminServer.VERB_HEADER, "1").header("Authorization", "Bearer " + token)
                .POST(HttpRequest.BodyPublishers.noBody()).build(),
                HttpResponse.BodyHandlers.ofString());
        }
        catch (final IOException e)
        {
            System.err.println("doppel: cannot reach the admin endpoint at " + uri + ": " + StatusCommand.describe(e)
                + "; is the daemon running? (choose another with --admin HOST:PORT; a changed [node].admin takes"
                + " effect only after a restart, so reload with --admin and the address the daemon listens on)");
            return 1;
        }
        final JsonNode body;
        try
        {
            body = JSON.readTree(r.body());
        }
        catch (final IOException e)
        {
            System.err.println("doppel: unexpected answer from " + uri + " (HTTP " + r.statusCode() + "): " + r.body());
            return 1;
        }
        if (r.statusCode() == 401 || r.statusCode() == 403)
        {
            System.err.println("doppel: reload not allowed by the daemon at " + address + ": "
                + body.path("error").asText(r.body().trim()));
            return DoppelCli.EXIT_NOT_ALLOWED;
        }
        if (r.statusCode() == 200 && body.path("accepted").asBoolean())
        {
            if (body.path("changes").isEmpty())
            {
                System.out.println("reloaded: no changes");
            }
            for (final JsonNode change : body.path("changes"))
            {
                System.out.println("reloaded: " + change.asText());
            }
            return 0;
        }
        if (body.path("refused").isEmpty())
        {
            System.err.println("doppel: reload refused by the daemon at " + address + ": "
                + body.path("error").asText(body.path("message").asText(r.body().trim())));
            return 1;
        }
        System.err.println("doppel: reload refused; the daemon goes on with its old config:");
        for (final JsonNode why : body.path("refused"))
        {
            System.err.println("  " + why.asText());
        }
        return 1;
    }
}
