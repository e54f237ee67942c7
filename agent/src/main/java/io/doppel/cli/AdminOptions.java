package io.doppel.cli;

import io.doppel.config.ConfigException;
import io.doppel.config.ConfigLoader;
import picocli.CommandLine.Option;

import java.nio.file.Path;

/** Where the running daemon's admin endpoint is: {@code --admin HOST:PORT}, or read from {@code --config}. */
final class AdminOptions
{
    static final String DEFAULT_ADMIN = "127.0.0.1:7790";

    @Option(names = "--admin", paramLabel = "HOST:PORT",
        description = "admin endpoint (default: [node].admin from --config, else " + DEFAULT_ADMIN + ")")
    String admin;

    @Option(names = {"-c", "--config"}, paramLabel = "FILE", description = "read the admin address from this config")
    Path config;

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
                System.err.println("doppel: " + e.getMessage());
                return null;
            }
        }
        return DEFAULT_ADMIN;
    }
}
