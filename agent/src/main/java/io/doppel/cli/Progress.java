package io.doppel.cli;

import io.doppel.config.Units;

import java.io.PrintStream;
import java.util.ArrayDeque;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * Progress of a long verb (resync, verify) on standard error. On a terminal: one bar line redrawn in
 * place ({@code \r}) with percent, bytes done and total, rate and ETA. Otherwise (a pipe, a file, a
 * journal): a plain line when the run starts and then one every {@code interval}, with the same numbers.
 * The rate is measured over the last {@value #WINDOW_SECONDS} s of samples.
 */
final class Progress
{
    static final int WINDOW_SECONDS = 10;
    private static final int BAR_CELLS = 20;

    private final PrintStream out;
    private final boolean terminal;
    private final long intervalNanos;
    private final LongSupplier clock;
    private final int width;

    /** (time, bytes done) of the samples inside the window, oldest first. */
    private final ArrayDeque<long[]> samples = new ArrayDeque<>();
    private String lastWaiting;
    private boolean lineDue = true;
    private long lastLineNanos;
    private boolean drawn;

    Progress(final PrintStream out, final boolean terminal, final double intervalSeconds, final LongSupplier clock,
        final int width)
    {
        this.out = out;
        this.terminal = terminal;
        this.intervalNanos = (long)(intervalSeconds * 1e9);
        this.clock = clock;
        this.width = width;
    }

    /** For the command line: a bar when this process runs on a terminal, plain lines otherwise. */
    static Progress onStderr(final double intervalSeconds)
    {
        int columns = 80;
        try
        {
            columns = Integer.parseInt(System.getenv().getOrDefault("COLUMNS", "80").trim());
        }
        catch (final NumberFormatException e)
        {
            // keep 80
        }
        return new Progress(System.err, System.console() != null, intervalSeconds, System::nanoTime,
            Math.max(40, columns));
    }

    /** Not running yet (e.g. waiting for the link): the text once (plain) or in the bar's place. */
    void waiting(final String text)
    {
        samples.clear();
        if (terminal)
        {
            draw(text);
        }
        else if (!text.equals(lastWaiting))
        {
            out.println(text);
        }
        lastWaiting = text;
        lineDue = true;
    }

    /**
     * Running: {@code done} of {@code total} bytes. {@code line} is the plain line's text (rate and ETA are
     * appended); {@code label} and {@code detail} go before and after the bar.
     */
    void update(final String line, final String label, final String detail, final long done, final long total)
    {
        final long now = clock.getAsLong();
        if (!samples.isEmpty() && done < samples.peekLast()[1])
        {
            samples.clear(); // the run started over (a reconnect): old samples say nothing about this one
        }
        samples.addLast(new long[] {now, done});
        while (samples.size() > 2 && now - samples.peekFirst()[0] > TimeUnit.SECONDS.toNanos(WINDOW_SECONDS))
        {
            samples.removeFirst();
        }
        final double rate = rate();
        lastWaiting = null;
        if (terminal)
        {
            draw(bar(label, detail, done, total, rate));
        }
        else if (lineDue || now - lastLineNanos >= intervalNanos)
        {
            out.println(line + rateAndEta(done, total, rate));
            lastLineNanos = now;
            lineDue = false;
        }
    }

    /** Clears the bar from the terminal (before the result is printed); nothing for plain lines. */
    void finish()
    {
        if (drawn)
        {
            out.print("\r\033[K");
            out.flush();
            drawn = false;
        }
    }

    /** Bytes per second over the window; negative when there are not two samples apart in time yet. */
    private double rate()
    {
        final long[] first = samples.peekFirst();
        final long[] last = samples.peekLast();
        if (first == null || last[0] <= first[0])
        {
            return -1;
        }
        return (last[1] - first[1]) * 1e9 / (last[0] - first[0]);
    }

    private static String rateAndEta(final long done, final long total, final double rate)
    {
        return rate < 0 ? "" : ", " + Units.formatBytes((long)rate) + "/s, ETA " + eta(done, total, rate);
    }

    private static String eta(final long done, final long total, final double rate)
    {
        if (done >= total)
        {
            return "0s";
        }
        return rate > 0 ? StatusCommand.formatSeconds((total - done) / rate) : "--";
    }

    /** {@code resync vm1 [#########           ]  45% 4.5 GiB/10.0 GiB 120.0 MiB/s ETA 45s  syncing} */
    String bar(final String label, final String detail, final long done, final long total, final double rate)
    {
        final double fraction = total > 0 ? Math.min(1.0, Math.max(0.0, (double)done / total)) : 0;
        final int cells = (int)Math.floor(fraction * BAR_CELLS);
        return String.format(Locale.ROOT, "%s [%s%s] %3d%% %s/%s %s ETA %s%s", label, "#".repeat(cells),
            " ".repeat(BAR_CELLS - cells), (int)Math.floor(fraction * 100), Units.formatBytes(done),
            Units.formatBytes(total), rate < 0 ? "--/s" : Units.formatBytes((long)rate) + "/s",
            rate < 0 ? "--" : eta(done, total, rate), detail.isEmpty() ? "" : "  " + detail);
    }

    private void draw(final String text)
    {
        final String shown = text.length() >= width ? text.substring(0, width - 1) : text;
        out.print("\r" + shown + "\033[K");
        out.flush();
        drawn = true;
    }
}
