package io.doppel.log;

import java.io.PrintStream;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Locale;

/**
 * One line per event on standard error, in the shape journald and grep like:
 * {@code 2026-11-28T04:10:00.123Z INFO  replication: volume vm1: connected to beta}.
 * systemd adds its own timestamp; the one here keeps foreground runs and test logs readable.
 */
public final class Log
{
    /** Severity, most severe first. */
    public enum Level
    {
        ERROR, WARN, INFO, DEBUG
    }

    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")
        .withZone(ZoneOffset.UTC);
    private static volatile Level threshold = Level.INFO;
    private static volatile PrintStream out = System.err;

    private Log()
    {
    }

    /** Sends log lines to {@code stream} from now on; returns where they went before (tests read the lines). */
    public static PrintStream output(final PrintStream stream)
    {
        final PrintStream before = out;
        out = stream;
        return before;
    }

    public static void setLevel(final String level)
    {
        threshold = Level.valueOf(level.toUpperCase(Locale.ROOT));
    }

    public static void error(final String component, final String message)
    {
        log(Level.ERROR, component, message);
    }

    public static void warn(final String component, final String message)
    {
        log(Level.WARN, component, message);
    }

    public static void info(final String component, final String message)
    {
        log(Level.INFO, component, message);
    }

    public static void debug(final String component, final String message)
    {
        log(Level.DEBUG, component, message);
    }

    public static boolean debugEnabled()
    {
        return threshold == Level.DEBUG;
    }

    private static void log(final Level level, final String component, final String message)
    {
        if (level.ordinal() > threshold.ordinal())
        {
            return;
        }
        final String line = TIME.format(Instant.now()) + " " + String.format("%-5s", level) + " "
            + component + ": " + message.replace('\n', ' ');
        out.println(line);
    }
}
