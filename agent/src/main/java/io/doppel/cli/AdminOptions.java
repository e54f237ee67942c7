package io.doppel.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import io.doppel.admin.AdminToken;
import io.doppel.config.ConfigException;
import io.doppel.config.ConfigLoader;
import io.doppel.config.NodeConfig;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.function.UnaryOperator;

/**
 * Where the running daemon's admin endpoint is ({@code --admin HOST:PORT}, or read from {@code --config}),
 * and the admin token that verbs changing state must send. The token is read from, in this order:
 * {@code --token-file}, the environment variable {@value #TOKEN_ENV}, {@code [node].admin-token-file} of
 * {@code --config}, of the default config {@value ConfigLoader#DEFAULT_PATH} when it exists, else
 * {@code /var/lib/doppel/admin.token}. Only root and the daemon's user can read that file, which is the
 * point: anyone else gets exit code {@value DoppelCli#EXIT_NOT_ALLOWED} and a message saying so.
 */
final class AdminOptions
{
    static final String DEFAULT_ADMIN = "127.0.0.1:7790";
    static final String TOKEN_ENV = "DOPPEL_ADMIN_TOKEN";

    /** The environment (tests replace it: a running JVM's own cannot change). */
    static UnaryOperator<String> environment = System::getenv;
    /** The config read when there is no --config (tests point it elsewhere). */
    static Path defaultConfig = Path.of(ConfigLoader.DEFAULT_PATH);

    @Option(names = "--admin", paramLabel = "HOST:PORT",
        description = "admin endpoint (default: [node].admin from --config, else " + DEFAULT_ADMIN + ")")
    String admin;

    @Option(names = {"-c", "--config"}, paramLabel = "FILE",
        description = "read the admin address and the admin token's file from this config")
    Path config;

    @Option(names = "--token-file", paramLabel = "FILE",
        description = "read the admin token from this file (default: $" + TOKEN_ENV + ", else [node].admin-token-file"
            + " of --config or of " + ConfigLoader.DEFAULT_PATH + ", else /var/lib/doppel/admin.token)")
    Path tokenFile;

    /** A reason the command cannot go on, already printed; {@link #code} is the exit code. */
    static final class Failure extends Exception
    {
        private static final long serialVersionUID = 1L;
        final int code;

        Failure(final int code, final String message)
        {
            super(message);
            this.code = code;
        }
    }

    /** The address, or null after printing why there is none (a bad config). */
    String address()
    {
        if (admin != null)
        {
            return admin;
        }
        if (config != null)
        {
            try
            {
                final var a = ConfigLoader.load(config).node().admin();
                return a.getHostString() + ":" + a.getPort();
            }
            catch (final ConfigException e)
            {
                System.err.println("doppel: " + e.getMessage()
                    + (Files.exists(config) && !Files.isReadable(config) ? "; " + asRoot() : ""));
                return null;
            }
        }
        return DEFAULT_ADMIN;
    }

    /** The admin token; a {@link Failure} (exit {@value DoppelCli#EXIT_NOT_ALLOWED}) says which file and why not. */
    String token() throws Failure
    {
        if (tokenFile != null)
        {
            return readToken(tokenFile, "--token-file");
        }
        final String fromEnv = environment.apply(TOKEN_ENV);
        if (fromEnv != null && !fromEnv.isBlank())
        {
            final String problem = AdminToken.problem(fromEnv.strip());
            if (problem != null)
            {
                throw fail("$" + TOKEN_ENV + ": " + problem);
            }
            return fromEnv.strip();
        }
        if (config != null)
        {
            return readToken(tokenFileOf(config), "[node].admin-token-file of " + config);
        }
        if (Files.exists(defaultConfig))
        {
            return readToken(tokenFileOf(defaultConfig), "[node].admin-token-file of " + defaultConfig);
        }
        return readToken(Path.of(NodeConfig.DEFAULT_DATA_DIR, NodeConfig.DEFAULT_ADMIN_TOKEN_FILE_NAME),
            "the default; no " + defaultConfig);
    }

    /**
     * {@code [node].admin-token-file} of {@code file}, else {@code <data-dir>/admin.token}. A config that fails
     * validation (reload is asked to re-read a broken file) is read as plain TOML for those two keys.
     */
    private static Path tokenFileOf(final Path file) throws Failure
    {
        try
        {
            return ConfigLoader.load(file).node().adminTokenFile();
        }
        catch (final ConfigException invalid)
        {
            final JsonNode node;
            try
            {
                node = new TomlMapper().readTree(file.toFile()).path("node");
            }
            catch (final IOException e)
            {
                throw fail("cannot find the admin token: " + invalid.getMessage()
                    + (Files.exists(file) && !Files.isReadable(file) ? "; " + asRoot() : ""));
            }
            if (node.path("admin-token-file").isTextual())
            {
                return Path.of(node.path("admin-token-file").asText());
            }
            return Path.of(node.path("data-dir").asText(NodeConfig.DEFAULT_DATA_DIR))
                .resolve(NodeConfig.DEFAULT_ADMIN_TOKEN_FILE_NAME);
        }
    }

    private static String readToken(final Path file, final String where) throws Failure
    {
        final String text;
        try
        {
            text = Files.readString(file, StandardCharsets.US_ASCII);
        }
        catch (final AccessDeniedException e)
        {
            throw fail("cannot read the admin token from " + file + " (" + where + "): permission denied; " + asRoot());
        }
        catch (final NoSuchFileException e)
        {
            throw fail("cannot read the admin token from " + file + " (" + where + "): no such file; the daemon"
                + " makes it on its first start: is the daemon running with this config? Give its config with --config"
                + " FILE, or the token with --token-file FILE or $" + TOKEN_ENV);
        }
        catch (final IOException e)
        {
            throw fail("cannot read the admin token from " + file + " (" + where + "): " + e.getMessage());
        }
        final String problem = AdminToken.problem(text.strip());
        if (problem != null)
        {
            throw fail("the admin token in " + file + " (" + where + ") is unusable: " + problem);
        }
        return text.strip();
    }

    private static String asRoot()
    {
        return "verbs that change state need the admin token, which only root and the daemon's user (doppel under"
            + " systemd) may read: run this as root (sudo) or as that user, or give --token-file FILE or $" + TOKEN_ENV;
    }

    private static Failure fail(final String message)
    {
        System.err.println("doppel: " + message);
        return new Failure(DoppelCli.EXIT_NOT_ALLOWED, message);
    }
}
