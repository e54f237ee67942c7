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
 * what systemd runs; SIGHUP reloads the config file live. Exit codes: 2 bad config, 3 could not start (volume, port, disk); a stop by SIGTERM
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

    /**
     * SIGHUP re-reads the config file (what {@code systemctl reload} and {@code kill -HUP} send). The JVM's
     * own handler would shut down on it; this one replaces it. The reload runs on its own thread, so the
     * signal dispatcher is never held up.
     */
    private static void reloadOnHangup(final DoppelNode node)
    {
        try
        {
            sun.misc.Signal.handle(new sun.misc.Signal("HUP"), signal ->
            {
                final Thread t = new Thread(node::reloadFromFile, "doppel-reload");
                t.setDaemon(true);
                t.start();
            });
        }
        catch (final IllegalArgumentException e)
        {
            // The JVM runs with -Xrs, or the platform has no SIGHUP: reload through POST /reload only.
            Log.warn(node.config().node().name() + "/node", "SIGHUP cannot be handled (" + e.getMessage()
                + "); reload with doppel reload");
        }
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
            node = DoppelNode.start(config, configFile);
        }
        catch (final io.doppel.admin.AdminToken.UnsafeTokenFileException e)
        {
            Log.error(config.node().name() + "/node", "cannot start: " + e.getMessage());
            return EXIT_CONFIG;
        }
        catch (final IOException | RuntimeException e)
        {
            Log.error(config.node().name() + "/node", "cannot start: " + e.getMessage());
            return EXIT_START;
        }
        final ServiceNotifier notifier = ServiceNotifier.start(node, System.getenv());
        if (notifier != null)
        {
            node.reloadListener(notifier);
        }
        reloadOnHangup(node);
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
