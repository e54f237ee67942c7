package io.doppel.daemon;

import io.doppel.config.ConfigException;
import io.doppel.config.ConfigLoader;
import io.doppel.config.DoppelConfig;
import io.doppel.log.Log;

import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;

/**
 * {@code doppel daemon --config FILE}: runs a node in the foreground until SIGTERM/SIGINT, which is
 * what systemd runs. Exit codes: 2 bad config, 3 could not start (volume, port, disk); a stop by SIGTERM
 * ends the way the JVM ends on a signal, with 143 (the unit lists it as success).
 */
public final class DaemonMain
{
    public static final int EXIT_CONFIG = 2;
    public static final int EXIT_START = 3;

    private DaemonMain()
    {
    }

    public static void main(final String[] args)
    {
        Path config = Path.of(ConfigLoader.DEFAULT_PATH);
        for (int i = 0; i < args.length; i++)
        {
            if (("--config".equals(args[i]) || "-c".equals(args[i])) && i + 1 < args.length)
            {
                config = Path.of(args[++i]);
            }
            else if (args[i].startsWith("--config="))
            {
                config = Path.of(args[i].substring("--config=".length()));
            }
            else
            {
                System.err.println("usage: DaemonMain [--config FILE]   (unknown argument: " + args[i] + ")");
                System.exit(EXIT_CONFIG);
            }
        }
        System.exit(run(config));
    }

    /** Runs until the JVM is asked to stop; returns the exit code. */
    public static int run(final Path configFile)
    {
        final DoppelConfig config;
        try
        {
            config = ConfigLoader.load(configFile);
        }
        catch (final ConfigException e)
        {
            Log.error("config", e.getMessage());
            return EXIT_CONFIG;
        }
        Log.setLevel(config.node().logLevel());
        final DoppelNode node;
        try
        {
            node = DoppelNode.start(config);
        }
        catch (final IOException | RuntimeException e)
        {
            Log.error(config.node().name() + "/node", "cannot start: " + e.getMessage());
            return EXIT_START;
        }
        final ServiceNotifier notifier = ServiceNotifier.start(node, System.getenv());
        final CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() ->
        {
            Log.info(config.node().name() + "/node", "stopping");
            if (notifier != null)
            {
                notifier.stopping();
            }
            node.close();
            stopped.countDown();
        }, "doppel-shutdown"));
        try
        {
            stopped.await();
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
        }
        return 0;
    }
}
