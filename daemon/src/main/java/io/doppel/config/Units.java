package io.doppel.config;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Parses the sizes ("4KiB", "10GiB", 4096) and durations ("500ms", "15s", "2m") the config file uses. */
public final class Units
{
    private static final Pattern SIZE = Pattern.compile("\\s*(\\d+)\\s*([A-Za-z]*)\\s*");
    private static final Pattern DURATION = Pattern.compile("\\s*(\\d+)\\s*(ms|s|m|h)\\s*");

    public static final String SIZE_FORMS = "a byte count or a number with B, KiB, MiB, GiB or TiB (e.g. \"4KiB\", \"10GiB\")";
    public static final String DURATION_FORMS = "a number with ms, s, m or h (e.g. \"500ms\", \"15s\")";

    private Units()
    {
    }

    /** Bytes in a size string; throws {@link IllegalArgumentException} with the accepted forms. */
    public static long parseSize(final String text)
    {
        final Matcher m = SIZE.matcher(text);
        if (!m.matches())
        {
            throw new IllegalArgumentException("expected " + SIZE_FORMS);
        }
        final long shift;
        switch (m.group(2).toLowerCase(Locale.ROOT))
        {
            case "": case "b": shift = 0; break;
            case "k": case "kib": shift = 10; break;
            case "m": case "mib": shift = 20; break;
            case "g": case "gib": shift = 30; break;
            case "t": case "tib": shift = 40; break;
            default: throw new IllegalArgumentException("unknown unit \"" + m.group(2) + "\": expected " + SIZE_FORMS
                + " (decimal units such as GB are not accepted, to avoid ambiguity)");
        }
        final long n;
        try
        {
            n = Long.parseLong(m.group(1));
        }
        catch (final NumberFormatException e)
        {
            throw new IllegalArgumentException("number too large: expected " + SIZE_FORMS);
        }
        if (n > (Long.MAX_VALUE >> shift))
        {
            throw new IllegalArgumentException("too large: at most 8EiB");
        }
        return n << shift;
    }

    /** Milliseconds in a duration string. */
    public static long parseDurationMillis(final String text)
    {
        final Matcher m = DURATION.matcher(text);
        if (!m.matches())
        {
            throw new IllegalArgumentException("expected " + DURATION_FORMS);
        }
        try
        {
            final long n = Long.parseLong(m.group(1));
            switch (m.group(2))
            {
                case "ms": return n;
                case "s": return Math.multiplyExact(n, 1000L);
                case "m": return Math.multiplyExact(n, 60_000L);
                default: return Math.multiplyExact(n, 3_600_000L);
            }
        }
        catch (final NumberFormatException | ArithmeticException e)
        {
            // "9999999999999999h" used to wrap around to a negative or a small number of milliseconds
            throw new IllegalArgumentException("too large: at most " + Long.MAX_VALUE + "ms");
        }
    }

    /** A size for humans: "4.0 KiB", "1.5 GiB". */
    public static String formatBytes(final long bytes)
    {
        final String[] units = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
        double v = bytes;
        int i = 0;
        while (Math.abs(v) >= 1024 && i < units.length - 1)
        {
            v /= 1024;
            i++;
        }
        return i == 0 ? bytes + " B" : String.format(Locale.ROOT, "%.1f %s", v, units[i]);
    }
}
